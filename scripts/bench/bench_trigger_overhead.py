"""What the converting-touch triggers cost an ordinary lead update.

Creates a client with N leads (default 200000) on the database under test,
then times updates that touch neither status nor converted_at, for all of
them, with the layer's lead triggers enabled and with them disabled
(`alter table ... disable trigger`, re-enabled before the timed transaction
commits: the triggers can never stay disabled). Each update is followed by
VACUUM and CHECKPOINT so that every run starts from the same state. Several repetitions,
alternating the order; medians, minima (least disturbed by other load on the
machine), their ratios and the median of the back-to-back pair ratios are
printed, with the difference per row. Then
EXPLAIN (ANALYZE, BUFFERS) of one ordinary update (no "Trigger" lines) and of
a status update (the triggers' calls). Prints figures, asserts nothing.

    .venv/bin/python scripts/bench/bench_trigger_overhead.py [--leads N] [--reps R] [--dsn URL]

Without --dsn: $DATABASE_URL, else the embedded database (scripts/db.sh url,
which honours CI_DB_PORT). The bench client is deleted at the end.
"""
from __future__ import annotations

import argparse
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from benchlib import default_dsn

ROOT = Path(__file__).resolve().parents[2]

# The layer's triggers on public.leads (the activities trigger fires on inserts only).
LEAD_TRIGGERS = ("leads_ci_conversion_time_upd", "leads_ci_mark_converting_touch", "leads_ci_conversion_time_ins")

STATEMENTS = {
    "first_name": "update public.leads set first_name = first_name || '' where client_id = %s",
    "updated_at": "update public.leads set updated_at = now() where client_id = %s",
    # A full-row write (a PATCH that sends status unchanged): UPDATE OF matches, WHEN says no.
    "status=status": "update public.leads set status = status, first_name = first_name || '' where client_id = %s",
}

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True)
class Timing:
    """Median and all runs of one statement in one trigger state, in milliseconds."""

    statement: str
    triggers: bool
    runs_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs_ms)

    @property
    def min_ms(self) -> float:
        return min(self.runs_ms)


def paired_ratio(on: Timing, off: Timing) -> float:
    """Median of the per-repetition on/off ratios (each pair ran back to back)."""
    return statistics.median(a / b for a, b in zip(on.runs_ms, off.runs_ms))


def create_bench_client(conn: Conn, leads: int) -> uuid.UUID:
    """A client with `leads` open leads; the first 1000 get an outbound touch."""
    client_id = uuid.uuid4()
    t0 = time.perf_counter()
    conn.execute("insert into public.clients (id, name) values (%s, 'bench: trigger overhead')", (client_id,))
    conn.execute(
        """
        insert into public.leads (client_id, first_name, last_name, email, title, company, status)
        select %s, 'First' || i, 'Last' || i, 'lead' || i || '@bench.test', 'Manager', 'Company ' || (i %% 997),
               'in_sequence'
        from generate_series(1, %s) as i
        """,
        (client_id, leads),
    )
    conn.execute(
        """
        insert into public.activities (client_id, lead_id, channel, action, created_at)
        select l.client_id, l.id, 'email', 'sent', now() - interval '1 day'
        from public.leads as l where l.client_id = %s
        order by l.id limit 1000
        """,
        (client_id,),
    )
    conn.execute("vacuum analyze public.leads")
    conn.execute("vacuum analyze public.activities")
    print(f"created client {client_id} with {leads} leads in {time.perf_counter() - t0:.1f} s")
    return client_id


def timed_update(conn: Conn, statement: str, client_id: uuid.UUID, triggers: bool) -> float:
    """One update of every bench lead, in milliseconds. The triggers are disabled and
    re-enabled inside the same transaction, so they can never stay disabled."""
    with conn.transaction():
        if not triggers:
            for name in LEAD_TRIGGERS:
                conn.execute(f"alter table public.leads disable trigger {name}")
        t0 = time.perf_counter()
        conn.execute(STATEMENTS[statement], (client_id,))
        elapsed = (time.perf_counter() - t0) * 1000.0
        if not triggers:
            for name in LEAD_TRIGGERS:
                conn.execute(f"alter table public.leads enable trigger {name}")
    conn.execute("vacuum public.leads")
    conn.execute("checkpoint")
    return elapsed


def measure(conn: Conn, client_id: uuid.UUID, reps: int) -> list[Timing]:
    results: list[Timing] = []
    for _ in range(3):  # warm up: cache, and the table's steady state of free space
        timed_update(conn, "first_name", client_id, True)
    for statement in STATEMENTS:
        runs: dict[bool, list[float]] = {True: [], False: []}
        for rep in range(reps):
            order = (True, False) if rep % 2 == 0 else (False, True)
            for triggers in order:
                runs[triggers].append(timed_update(conn, statement, client_id, triggers))
        results += [Timing(statement, t, tuple(runs[t])) for t in (True, False)]
    return results


def explain(conn: Conn, statement: str, params: tuple[Any, ...]) -> list[str]:
    with conn.transaction(force_rollback=True):
        rows = conn.execute("explain (analyze, buffers, costs off) " + statement, params).fetchall()
    return [str(r[0]) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--dsn", default=None)
    args = parser.parse_args()

    with psycopg.connect(args.dsn or default_dsn(), autocommit=True) as conn:
        version = conn.execute("select version()").fetchone()
        print(f"server: {version[0] if version else '?'}")
        client_id = create_bench_client(conn, args.leads)
        try:
            results = measure(conn, client_id, args.reps)
            print(f"\nupdate of all {args.leads} leads, {args.reps} runs each, triggers on vs off (ms)")
            print(
                f"{'statement':<14} {'median on':>10} {'median off':>11} {'ratio':>6} {'min on':>8} {'min off':>8} "
                f"{'ratio':>6} {'paired':>7} {'us/row':>7}"
            )
            for on, off in zip(results[::2], results[1::2]):
                per_row_us = (on.median_ms - off.median_ms) * 1000.0 / args.leads
                print(
                    f"{on.statement:<14} {on.median_ms:>10.1f} {off.median_ms:>11.1f} "
                    f"{on.median_ms / off.median_ms:>6.3f} {on.min_ms:>8.1f} {off.min_ms:>8.1f} "
                    f"{on.min_ms / off.min_ms:>6.3f} {paired_ratio(on, off):>7.3f} {per_row_us:>+7.3f}"
                )
                print(f"{'':<14} on:  {', '.join(f'{x:.0f}' for x in on.runs_ms)}")
                print(f"{'':<14} off: {', '.join(f'{x:.0f}' for x in off.runs_ms)}")

            plan = explain(conn, STATEMENTS["first_name"], (client_id,))
            triggers = [line for line in plan if line.lstrip().startswith("Trigger")]
            print("\nEXPLAIN (ANALYZE, BUFFERS) " + STATEMENTS["first_name"])
            print("\n".join("    " + line for line in plan))
            print(f"  -> Trigger lines: {len(triggers)} {triggers if triggers else '(none: no trigger ran)'}")

            status_sql = (
                "update public.leads set status = 'converted' where id in "
                "(select a.lead_id from public.activities as a where a.client_id = %s)"
            )
            plan = explain(conn, status_sql, (client_id,))
            print("\nEXPLAIN (ANALYZE, BUFFERS) " + status_sql + "  -- 1000 leads with a touch")
            print("\n".join("    " + line for line in plan))
        finally:
            t0 = time.perf_counter()
            conn.execute("delete from public.clients where id = %s", (client_id,))
            print(f"\ndeleted the bench client in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
