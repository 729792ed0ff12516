"""What the layer costs the host's writes of activities, content included (issue 15, item 1).

Builds (once per database) a client with N leads, each with four outbound
touches, then times in rolled-back transactions:

  * single sends without a snapshot: 2000 INSERTs of one host-style touch each
    (a rendered subject and preview, as the host writes today), in a
    server-side loop (no round trips, so the ratio is the strict one);
  * single sends with a snapshot: the same with an engine's snapshot of a
    rendered body;
  * bulk COPY of history: one COPY of four touches per lead (half with a
    snapshot, half host-style), spread over the past year.

Each in three modes: the layer as installed ("layer"); every trigger of the
layer on activities disabled ("triggers off"); and those triggers disabled and
the layer's indexes on activities dropped ("bare": the host's own table, the
baseline), both inside the rolled-back transaction. Several databases
(--dsn name=URL, e.g. the release and this branch) are measured interleaved:
every repetition runs each database and mode in alternating order. Prints the
median and min per measurement and the ratios to "triggers off" and "bare";
asserts nothing.

    .venv/bin/python scripts/bench/bench_content_writes.py [--leads N] [--reps R] [--dsn name=URL ...]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from benchlib import Measure, default_dsn, layer_indexes, layer_triggers, timed

Conn = psycopg.Connection[tuple[Any, ...]]
SINGLES = 2000
MODES = ("layer", "triggers off", "bare")

SEND_LOOP = """
do $$
declare r record;
begin
  for r in select l.id, l.client_id, l.first_name, l.company from public.leads as l
           where l.client_id = '{client}' order by l.id limit {n} loop
    insert into public.activities (client_id, lead_id, channel, action, created_at, subject, content_preview {snapcol})
    values (r.client_id, r.id, 'email', 'sent', now(), 'Quick question about ' || r.company,
      'Hi ' || r.first_name || ', teams like ' || r.company || ' lose hours to manual work. Worth 15 minutes?' {snapval});
  end loop;
end
$$"""
SNAPSHOT = (
    ", jsonb_build_object('subject', 'Quick question about {company}', 'body', 'Hi ' || r.first_name "
    "|| ', teams like ' || r.company || ' lose hours to manual work. Worth 15 minutes?', 'cta', 'worth 15 minutes')"
)
STATEMENTS = {
    "single send, no snapshot": SEND_LOOP.replace("{snapcol}", "").replace("{snapval}", ""),
    "single send, snapshot": SEND_LOOP.replace("{snapcol}", ", content_snapshot").replace("{snapval}", SNAPSHOT),
}


def create_client(conn: Conn, leads: int) -> uuid.UUID:
    client = uuid.uuid4()
    conn.execute("insert into public.clients (id, name) values (%s, 'bench: content writes')", (client,))
    conn.execute(
        "insert into public.leads (client_id, first_name, last_name, company, organization_industry, status) "
        "select %s, 'First' || i, 'Last' || i, 'Company ' || i, 'Dental', 'in_sequence' "
        "from generate_series(1, %s) as i",
        (client, leads),
    )
    conn.execute(
        """
        insert into public.activities (client_id, lead_id, channel, action, created_at, subject, content_preview)
        select l.client_id, l.id, (array['email', 'linkedin', 'sms', 'email'])[k]::public.channel_type, 'sent',
               now() - interval '1 day' * (15 - 3 * k), 'Hello ' || l.company, 'Hi ' || l.first_name
        from public.leads as l cross join generate_series(1, 4) as k
        where l.client_id = %s
        """,
        (client,),
    )
    conn.execute("select ci_private.fill_content_features(%s)", (client,))
    conn.execute("vacuum analyze public.leads")
    conn.execute("vacuum analyze public.activities")
    conn.execute("vacuum analyze ci_private.lead_touches")
    return client


def history_rows(conn: Conn, client: uuid.UUID) -> list[tuple[Any, ...]]:
    leads = conn.execute(
        "select id, first_name, company from public.leads where client_id = %s order by id", (client,)
    ).fetchall()
    rows: list[tuple[Any, ...]] = []
    for i, (lead, first, company) in enumerate(leads):
        for k in range(4):
            subject = f"Quick question about {company}"
            body = f"Hi {first}, teams like {company} lose hours to manual work. Worth 15 minutes?"
            snapshot = (
                json.dumps({"subject": "Quick question about {company}", "body": body, "cta": "worth 15 minutes"})
                if (i + k) % 2 else None
            )
            rows.append((client, lead, ("email", "linkedin", "sms", "email")[k], "sent",
                         f"2025-{3 * k + 1:02d}-15T10:00:00Z", subject, body, snapshot))
    return rows


def time_write(conn: Conn, mode: str, measure: Measure, run: Any) -> None:
    """One run of a write in a transaction that is rolled back, in the given mode (the triggers
    disabled and the indexes dropped inside that transaction), added to measure."""
    with conn.transaction(force_rollback=True):
        if mode != "layer":
            for _, name in layer_triggers(conn, ("activities",)):
                conn.execute(f'alter table public.activities disable trigger "{name}"')
        if mode == "bare":
            for name in layer_indexes(conn, ("activities",)):
                conn.execute(f"drop index {name}")
        timed(conn, measure, run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--leads", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--dsn", action="append", help="name=URL (repeatable); default: the embedded database")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    targets = [tuple(d.split("=", 1)) for d in args.dsn] if args.dsn else [("db", default_dsn())]
    conns: dict[str, Conn] = {name: psycopg.connect(url, autocommit=True) for name, url in targets}
    clients: dict[str, uuid.UUID] = {}
    copies: dict[str, list[tuple[Any, ...]]] = {}
    for name, conn in conns.items():
        t0 = time.perf_counter()
        clients[name] = create_client(conn, args.leads)
        copies[name] = history_rows(conn, clients[name])
        print(f"{name}: client {clients[name]} with {args.leads} leads in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)

    def runner(name: str, what: str) -> Any:
        conn = conns[name]
        if what == "bulk COPY of history":
            def copy() -> None:
                with conn.cursor() as cur, cur.copy(
                    "copy public.activities (client_id, lead_id, channel, action, created_at, subject, "
                    "content_preview, content_snapshot) from stdin"
                ) as cp:
                    for row in copies[name]:
                        cp.write_row(row)
            return copy
        sql = STATEMENTS[what].replace("{client}", str(clients[name])).replace("{n}", str(SINGLES))
        return lambda: conn.execute(sql)

    measures = [*STATEMENTS, "bulk COPY of history"]
    runs = {(name, what, mode): Measure(f"{name}: {what}, {mode}")
            for name in conns for what in measures for mode in MODES}
    try:
        for rep in range(args.reps + 1):
            for what in measures:
                names = list(conns) if rep % 2 == 0 else list(reversed(conns))
                for name in names:
                    modes = MODES if rep % 2 == 0 else tuple(reversed(MODES))
                    for mode in modes:
                        # The first repetition warms up: timed, not kept.
                        measure = runs[(name, what, mode)] if rep > 0 else Measure("warm-up")
                        time_write(conns[name], mode, measure, runner(name, what))
    finally:
        for name, conn in conns.items():
            conn.execute("delete from public.activities where client_id = %s", (clients[name],))
            conn.execute("delete from public.leads where client_id = %s", (clients[name],))
            conn.execute("delete from public.clients where id = %s", (clients[name],))

    out: list[dict[str, Any]] = []
    print(f"{'database':<10} {'measure':<26} {'mode':<13} {'median ms':>10} {'min ms':>9} "
          f"{'per row us':>10} {'x trig off':>10} {'x bare':>7}")
    for what in measures:
        rows = SINGLES if what != "bulk COPY of history" else 4 * args.leads
        for name in conns:
            med = {m: runs[(name, what, m)].median * 1000.0 for m in MODES}
            for mode in MODES:
                fastest = runs[(name, what, mode)].fastest * 1000.0
                item = {"database": name, "measure": what, "mode": mode, "median_ms": med[mode],
                        "min_ms": fastest, "rows": rows, "ratio_triggers_off": med[mode] / med["triggers off"],
                        "ratio_bare": med[mode] / med["bare"]}
                out.append(item)
                print(f"{name:<10} {what:<26} {mode:<13} {med[mode]:>10.1f} {fastest:>9.1f} "
                      f"{1000 * med[mode] / rows:>10.1f} {item['ratio_triggers_off']:>10.2f} {item['ratio_bare']:>7.2f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
