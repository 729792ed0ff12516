"""What the layer costs the host's writes of leads: status -> converted, other updates, inserts.

Times, on an existing client (the largest of the database unless --client is given), host
writes of public.leads one statement at a time in a server-side loop (no client round trips,
so the ratio is the strict one), each inside a transaction that is rolled back (every run
starts from the same rows; nothing the layer disables can stay disabled):

  * convert: N UPDATEs of one lead's status to 'converted' (leads not converted yet);
  * status (no score change): N UPDATEs of one lead's status from a non-risk status to
    another one (in_sequence <-> enriched etc.), which cannot change the score;
  * title: N UPDATEs of one lead's title (a scored field);
  * first_name: N UPDATEs of an unscored field;
  * send to a converted lead: N INSERTs of an outbound touch for a converted lead (the
    activities triggers re-mark the lead: ci_private.remark_leads);
  * booking: N INSERTs of a meeting_booked activity for a lead not converted (the
    activities triggers derive the conversion: ci_private.derive_conversions);
  * insert: N INSERTs of one lead.

Each in these states of the layer, interleaved round by round (the order alternates):

  * on: as installed;
  * triggers off: every layer trigger on leads and activities disabled
    (`alter table ... disable trigger` inside the transaction);
  * triggers+indexes off: the same and the layer's indexes on leads and activities
    dropped inside the transaction (the host's bare table: a status update can be HOT);
  * with --each: only one of the layer's lead triggers enabled (the activities
    triggers on: the mark's cascade is part of that trigger's cost).

Prints medians and minima in ms, ratios to both baselines and the extra microseconds per
row over "triggers off"; writes JSON with --json. Asserts nothing. With --compare NAME=DSN
(repeatable) the same is timed, interleaved, on other databases too (e.g. one migrated to
the previous release with a client generated the same way): before vs after on one machine.

    .venv/bin/python scripts/bench/bench_lead_writes.py [--client ID | --leads N] [--writes N] [--runs R]
        [--only convert,title] [--each] [--json PATH] [--dsn URL] [--compare NAME=DSN ...]

Without --dsn: $DATABASE_URL, else the embedded database (scripts/db.sh url, which
honours CI_DB_PORT).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import psycopg
from benchlib import Measure, default_dsn, layer_indexes, layer_triggers, timed

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "sidecar"))

from ci_sidecar.generator import GeneratorConfig, generate

Conn = psycopg.Connection[tuple[Any, ...]]

LOOPS = {
    "convert": """
      do $$ declare r record; begin
        for r in select l.id from public.leads as l
                 where l.client_id = '{client}' and l.deleted_at is null and l.status::text <> 'converted'
                 order by l.id limit {n}
        loop update public.leads set status = 'converted' where id = r.id; end loop; end $$""",
    "status (no score change)": """
      do $$ declare r record; begin
        for r in select l.id, l.status::text as s from public.leads as l
                 where l.client_id = '{client}' and l.deleted_at is null
                   and l.status::text in ('new', 'enriched', 'scored', 'in_sequence', 'not_interested', 'dead')
                 order by l.id limit {n}
        loop update public.leads
             set status = case when r.s = 'dead' then 'not_interested' else 'dead' end::public.lead_status
             where id = r.id; end loop; end $$""",
    "title": """
      do $$ declare r record; begin
        for r in select l.id from public.leads as l where l.client_id = '{client}' order by l.id limit {n}
        loop update public.leads set title = coalesce(title, '') || ' x' where id = r.id; end loop; end $$""",
    "first_name": """
      do $$ declare r record; begin
        for r in select l.id from public.leads as l where l.client_id = '{client}' order by l.id limit {n}
        loop update public.leads set first_name = coalesce(first_name, '') || 'x' where id = r.id; end loop; end $$""",
    "send to a converted lead": """
      do $$ declare r record; begin
        for r in select l.id, l.client_id from public.leads as l cross join generate_series(1, 10) as g (i)
                 where l.client_id = '{client}' and l.status::text = 'converted' and l.deleted_at is null
                 order by g.i, l.id limit {n}
        loop insert into public.activities (client_id, lead_id, channel, action, created_at)
             values (r.client_id, r.id, 'email', 'sent', now()); end loop; end $$""",
    "booking": """
      do $$ declare r record; begin
        for r in select l.id, l.client_id from public.leads as l
                 where l.client_id = '{client}' and l.deleted_at is null and l.status::text <> 'converted'
                 order by l.id limit {n}
        loop insert into public.activities (client_id, lead_id, channel, action, created_at)
             values (r.client_id, r.id, 'email', 'meeting_booked', now()); end loop; end $$""",
    "insert": """
      do $$ begin
        for i in 1..{n}
        loop insert into public.leads (client_id, email, first_name, title, organization_industry,
               organization_employee_count, organization_country, status)
             values ('{client}', 'bench' || i || '@example.com', 'Bench', 'Head of Sales', 'software',
               40, 'US', 'new'); end loop; end $$""",
}


VACUUMED = ("public.leads", "public.activities", "ci_private.lead_touches", "ci_private.lead_conversion_status")


def time_write(
    conn: Conn, measure: Measure, statement: str, disable: list[tuple[str, str]], drop: list[str]
) -> None:
    """One loop in a transaction that is rolled back, with the given triggers disabled and indexes dropped,
    added to measure.

    The tables are vacuumed first (not timed): the rolled-back rows of the previous run would
    otherwise slow this one (the same leads are written each time), which no committed write sees.
    """
    for table in VACUUMED:
        conn.execute(f"vacuum {table}")
    with conn.transaction(force_rollback=True):
        for table, trigger in disable:
            conn.execute(f'alter table public."{table}" disable trigger "{trigger}"')
        for index in drop:
            conn.execute(f"drop index {index}")
        timed(conn, measure, lambda: conn.execute(statement))


def build_client(conn: Conn, leads: int, seed: int) -> str:
    """A client of the generator's realistic shapes (step templates, rendered bodies), analysed."""
    cfg = GeneratorConfig(seed=seed, clients=1, leads_per_client=leads, client_name_prefix="bench-leads",
                          step_templates=True, unique_bodies=True)
    client = str(generate(conn, cfg).client_ids[0])
    conn.execute("analyze public.leads")
    conn.execute("analyze public.activities")
    return client


def delete_client(conn: Conn, client: str) -> None:
    conn.execute("delete from public.activities where client_id = %s", (client,))
    conn.execute("delete from public.leads where client_id = %s", (client,))
    conn.execute("delete from public.clients where id = %s", (client,))


def largest_client(conn: Conn) -> str:
    row = conn.execute("select client_id from public.leads group by 1 order by count(*) desc limit 1").fetchone()
    if row is None:
        raise SystemExit("no leads in the database: generate a client first (ci generate, or the generator)")
    return str(row[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--client", help="the client to write (default: the largest; with --compare, each database's)")
    parser.add_argument("--leads", type=int, help="generate a client of this many leads in each database (deleted after)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(LOOPS))
    parser.add_argument("--each", action="store_true", help="also each lead trigger alone")
    parser.add_argument("--dsn")
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=DSN",
                        help="another database (e.g. one migrated to the previous release), timed interleaved")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    loops = [s.strip() for s in args.only.split(",")] if args.only else list(LOOPS)
    dsns = {"this": args.dsn or default_dsn()} | dict(c.split("=", 1) for c in args.compare)

    conns: dict[str, Conn] = {name: psycopg.connect(dsn, autocommit=True) for name, dsn in dsns.items()}
    # (database, state) -> triggers to disable, indexes to drop
    states: dict[tuple[str, str], tuple[list[tuple[str, str]], list[str]]] = {}
    clients: dict[str, dict[str, Any]] = {}
    built: dict[str, str] = {}
    for db, conn in conns.items():
        conn.execute("set statement_timeout = 0")
        if args.leads:
            client = build_client(conn, args.leads, args.seed)
            built[db] = client
        else:
            client = args.client if args.client and not args.compare else largest_client(conn)
        sizes = conn.execute(
            "select (select count(*) from public.leads where client_id = %(c)s), "
            "(select count(*) from public.activities where client_id = %(c)s)", {"c": client}).fetchone()
        assert sizes is not None
        clients[db] = {"id": client, "leads": sizes[0], "activities": sizes[1]}
        print(f"{db}: client {client}: {sizes[0]:,} leads, {sizes[1]:,} activities; {args.writes} writes a run")
        for table in VACUUMED:
            conn.execute(f"vacuum analyze {table}")
        triggers = layer_triggers(conn)
        indexes = layer_indexes(conn)
        states[(db, "on")] = ([], [])
        states[(db, "triggers off")] = (triggers, [])
        states[(db, "triggers+indexes off")] = (triggers, indexes)
        if args.each:
            lead_triggers = [t for tab, t in triggers if tab == "leads"]
            for keep in lead_triggers:
                states[(db, f"only {keep}")] = ([("leads", t) for t in lead_triggers if t != keep], [])

    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "clients": clients, "writes": args.writes, "runs": args.runs, "results": {},
    }
    for loop in loops:
        times = {k: Measure(f"{loop}: {k[0]} / {k[1]}") for k in states}
        for rnd in range(args.runs):
            order = list(states) if rnd % 2 == 0 else list(reversed(states))
            for key in order:
                db, _ = key
                stmt = LOOPS[loop].format(client=clients[db]["id"], n=args.writes)
                time_write(conns[db], times[key], stmt, *states[key])
            last = ", ".join(f"{d}/{s} {times[(d, s)].seconds[-1] * 1e3:.0f}" for d, s in states)
            print(f"  {loop} round {rnd + 1}: {last}", file=sys.stderr)
        med = {k: m.median for k, m in times.items()}
        best = {k: m.fastest for k, m in times.items()}
        print(f"\n{loop} ({args.writes} statements, {args.runs} runs; ratios to the same database's baselines)")
        print(f"  {'database / state':<52} {'median ms':>10} {'min ms':>8} {'/trig off':>9} {'/bare':>7} {'+us/row':>8}")
        for db, s in states:
            off, bare = med[(db, "triggers off")], med[(db, "triggers+indexes off")]
            m = med[(db, s)]
            print(f"  {db + ' / ' + s:<52} {m * 1e3:>10.1f} {best[(db, s)] * 1e3:>8.1f} "
                  f"{m / off:>9.2f} {m / bare:>7.2f} {(m - off) / args.writes * 1e6:>8.1f}")
        report["results"][loop] = {f"{d} / {s}": {"median_s": med[(d, s)], "min_s": best[(d, s)],
                                                  "runs_s": times[(d, s)].seconds} for d, s in states}
    for db, client in built.items():
        delete_client(conns[db], client)
    for conn in conns.values():
        conn.close()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
