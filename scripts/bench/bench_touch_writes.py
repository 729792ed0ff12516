"""What keeping each lead's touches (ci_private.lead_touches) costs the writes of activities.

Creates a client with N leads (default 20000), each with four outbound touches,
then times, with the lead_touches triggers enabled and disabled (`alter table
... disable trigger` inside the timed transaction, which is rolled back: the
triggers can never stay disabled, and every run starts from the same rows):

  * single sends: 2000 INSERT statements of one outbound touch each, in a
    server-side loop (no client round trips, so the ratio is the strict one);
  * single opens: the same with an inbound activity (the triggers read the
    statement's rows and find no touch);
  * one bulk INSERT of a send to every lead;
  * one UPDATE of the subject of every outbound touch (no column the
    triggers keep: they compare the rows and recompute nothing);
  * one DELETE of a touch of every lead;
  * single conversions: 2000 UPDATEs of one lead's status to 'converted', in a
    server-side loop; "off" disables every conversion trigger of the layer
    (the lead triggers and the activities triggers that the mark fires), the
    scoring trigger staying on in both (status is a scored column).

Several repetitions alternating the order; medians, their ratio, and the
difference per row in microseconds. Then the one-time rebuild of the client's
rows (ci_private.rebuild_lead_touches), per lead. Prints figures, asserts nothing.

    .venv/bin/python scripts/bench/bench_touch_writes.py [--leads N] [--reps R] [--dsn URL]

Without --dsn: $DATABASE_URL, else the embedded database (scripts/db.sh url,
which honours CI_DB_PORT). The bench client is deleted at the end.
"""
from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

import psycopg
from bench_trigger_overhead import Timing
from benchlib import default_dsn

TRIGGERS = ("activities_ci_lead_touches_ins", "activities_ci_lead_touches_upd", "activities_ci_lead_touches_del")
# Disabled for the single conversions ("table.trigger"; a name that does not
# exist on the database under test, e.g. an older release's, is skipped).
CONVERSION_TRIGGERS = (
    "leads.leads_ci_conversion_time_upd", "leads.leads_ci_mark_converting_touch",
    "activities.activities_ci_lead_touches_upd", "activities.activities_ci_record_conversion",
)
SINGLES = 2000

LOOP = """
do $$
declare r record;
begin
  for r in select l.id, l.client_id from public.leads as l where l.client_id = '{client}' order by l.id limit {n} loop
    insert into public.activities (client_id, lead_id, channel, action, created_at)
    values (r.client_id, r.id, 'email', '{action}', now());
  end loop;
end
$$"""

STATEMENTS = {
    "single sends": (LOOP.replace("{action}", "sent"), SINGLES),
    "single opens": (LOOP.replace("{action}", "opened"), SINGLES),
    "bulk insert": (
        ("insert into public.activities (client_id, lead_id, channel, action, created_at) "
        "select l.client_id, l.id, 'linkedin', 'sent', now() from public.leads as l where l.client_id = '{client}'"),
        0,
    ),
    "update subject": (
        ("update public.activities set subject = coalesce(subject, '') || 'x' "
        "where client_id = '{client}' and action = 'sent'"),
        0,
    ),
    "single conversions": (
        LOOP.replace(
            """    insert into public.activities (client_id, lead_id, channel, action, created_at)
    values (r.client_id, r.id, 'email', '{action}', now());""",
            "    update public.leads set status = 'converted' where id = r.id;",
        ),
        SINGLES,
    ),
    "delete a touch": (
        ("delete from public.activities where client_id = '{client}' and action = 'sent' "
        "and created_at < now() - interval '9 days'"),
        0,
    ),
}

Conn = psycopg.Connection[tuple[Any, ...]]


def create_bench_client(conn: Conn, leads: int) -> uuid.UUID:
    """A client with `leads` open leads of four outbound touches each (days 12, 9, 6, 3 ago)."""
    client_id = uuid.uuid4()
    t0 = time.perf_counter()
    conn.execute("insert into public.clients (id, name) values (%s, 'bench: touch writes')", (client_id,))
    conn.execute(
        "insert into public.leads (client_id, first_name, company, status) "
        "select %s, 'First' || i, 'Company ' || i, 'in_sequence' from generate_series(1, %s) as i",
        (client_id, leads),
    )
    conn.execute(
        """
        insert into public.activities (client_id, lead_id, channel, action, created_at)
        select l.client_id, l.id, (array['email', 'linkedin', 'sms', 'voice'])[k]::public.channel_type,
               'sent', now() - interval '1 day' * (15 - 3 * k)
        from public.leads as l cross join generate_series(1, 4) as k
        where l.client_id = %s
        """,
        (client_id,),
    )
    conn.execute("vacuum analyze public.leads")
    conn.execute("vacuum analyze public.activities")
    conn.execute("vacuum analyze ci_private.lead_touches")
    print(f"created client {client_id} with {leads} leads and {4 * leads} touches in {time.perf_counter() - t0:.1f} s")
    return client_id


def timed(conn: Conn, sql: str, triggers: bool, names: tuple[str, ...] = ()) -> tuple[float, int]:
    """One run in a rolled-back transaction: milliseconds and rows written."""
    with conn.transaction(force_rollback=True):
        if not triggers:
            for qualified in names or tuple(f"activities.{name}" for name in TRIGGERS):
                table, name = qualified.split(".")
                found = conn.execute(
                    "select 1 from pg_trigger where tgrelid = %s::regclass and tgname = %s", (f"public.{table}", name)
                ).fetchone()
                if found:
                    conn.execute(f"alter table public.{table} disable trigger {name}")
        t0 = time.perf_counter()
        cur = conn.execute(sql)
        elapsed = (time.perf_counter() - t0) * 1000.0
    return elapsed, cur.rowcount


def measure(conn: Conn, client_id: uuid.UUID, reps: int) -> tuple[list[Timing], dict[str, int]]:
    """Timings on and off for each statement, and the rows each writes."""
    results: list[Timing] = []
    rows_of: dict[str, int] = {}
    for statement, (template, fixed_rows) in STATEMENTS.items():
        sql = template.replace("{client}", str(client_id)).replace("{n}", str(SINGLES))
        names = CONVERSION_TRIGGERS if statement == "single conversions" else ()
        timed(conn, sql, True)  # warm up
        runs: dict[bool, list[float]] = {True: [], False: []}
        rows = fixed_rows
        for rep in range(reps):
            for triggers in ((True, False) if rep % 2 == 0 else (False, True)):
                ms, written = timed(conn, sql, triggers, names)
                runs[triggers].append(ms)
                rows = fixed_rows or written
        results += [Timing(statement, t, tuple(runs[t])) for t in (True, False)]
        rows_of[statement] = rows
    return results, rows_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--dsn", default=None)
    args = parser.parse_args()

    with psycopg.connect(args.dsn or default_dsn(), autocommit=True) as conn:
        client_id = create_bench_client(conn, args.leads)
        try:
            results, rows_of = measure(conn, client_id, args.reps)
            print(f"\nwrites of activities, lead_touches triggers on vs off, {args.reps} runs each (ms)")
            print(f"{'statement':<16} {'rows':>7} {'median on':>10} {'median off':>11} {'ratio':>6} {'us/row':>7}")
            for on, off in zip(results[::2], results[1::2]):
                rows = rows_of[on.statement]
                per_row_us = (on.median_ms - off.median_ms) * 1000.0 / max(rows, 1)
                print(
                    f"{on.statement:<16} {rows:>7} {on.median_ms:>10.1f} {off.median_ms:>11.1f} "
                    f"{on.median_ms / off.median_ms:>6.2f} {per_row_us:>+7.1f}"
                )
            with conn.transaction(force_rollback=True):
                t0 = time.perf_counter()
                conn.execute("select ci_private.rebuild_lead_touches(%s)", (client_id,))
                rebuild = time.perf_counter() - t0
            print(f"\nrebuild of the client's rows (one-time repair): {rebuild:.2f} s, "
                  f"{rebuild * 1e6 / args.leads:.0f} us a lead of four touches")
        finally:
            t0 = time.perf_counter()
            conn.execute("delete from public.clients where id = %s", (client_id,))
            print(f"\ndeleted the bench client in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
