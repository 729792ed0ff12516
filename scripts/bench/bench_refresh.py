"""The refresh against the alternatives, and what the host's writes pay, on one client.

    .venv/bin/python scripts/bench/bench_refresh.py [--leads N] [--runs R] [--json PATH] [--dsn URL]

Builds a client of N leads (default 100,000) with the generator's realistic shapes
(ci_sidecar.generator: up to six touches over four channels in each lead's local
business hours, content snapshots, the host's variants, bookings by both paths), then,
in R interleaved rounds (default 3; each round runs every measurement once, so a drift
of the machine weighs on all alike), times as one statement each on a warm cache:

  * `refresh_conversion_patterns` (the whole refresh, stored) and each detector alone;
  * the reference: one sorted pass over the client's activities, numbering each lead's
    activities in time order and keeping the numbered rows (a form the planner cannot
    shortcut: the filter reads the row number);
  * the seed's design: the client's leads and activities fetched into Python and
    analysed with pandas (the same counts the detectors make: WHO rates by title and
    industry, the converting touch, WHAT rates by subject, WHEN by local day/hour and
    position, HOW by the first three channels), end to end;
  * DuckDB fed the same rows through COPY (Postgres `COPY ... TO STDOUT` into DuckDB),
    the same analysis in DuckDB's SQL, end to end.

Then, once: the host's writes with the layer's triggers and without (the layer's
triggers disabled inside a transaction that is rolled back): a single send (one
INSERT each, in a server-side loop), a single send with a content snapshot, a bulk
INSERT of a send to every lead, a status change to converted; and the first refresh
of a client the statistics have never seen (a copy of the client written after the
last ANALYZE, refreshed at once) against the same refresh after ANALYZE.

Prints each figure with its median, minimum, ratio to the reference and the peak
private memory of the database backend (scripts/bench/benchmem.py), then the goal
ratios of issue 15, and writes everything as JSON (default
bench-results/bench_refresh-<N>.json). Asserts nothing. The bench clients are
deleted at the end unless --keep.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import psycopg
from benchmem import Footprint

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "sidecar"))

from ci_sidecar.generator import GeneratorConfig, generate

Conn = psycopg.Connection[tuple[Any, ...]]

OUTBOUND = ("sent", "email_sent", "sms_sent", "linkedin_sent", "voice_completed", "connection_sent", "message_sent")
FAILED = ("unsubscribed", "bounced", "not_interested", "dead")

SORTED_PASS = """
select count(*) from (
  select row_number() over (partition by a.lead_id order by a.created_at, a.id) as rn
  from public.activities as a where a.client_id = %(client)s
) as s where s.rn > 0
"""

LEADS_SQL = """
select l.id::text as lead_id, l.status::text as status, l.converted_at, l.title, l.organization_industry as industry,
       coalesce(l.timezone, cp.timezone, c.timezone, 'UTC') as zone
from public.leads as l
join public.clients as c on c.id = l.client_id
left join public.campaigns as cp on cp.id = l.campaign_id
where l.client_id = %(client)s and l.deleted_at is null
"""

ACTIVITIES_SQL = """
select a.id::text as id, a.lead_id::text as lead_id, a.channel::text as channel, a.action, a.created_at,
       coalesce(a.content_snapshot ->> 'subject', a.subject) as subject
from public.activities as a where a.client_id = %(client)s
"""

# The analysis both alternatives run, in DuckDB's SQL over tables `leads` and `acts`.
DUCK_ANALYSIS = {
    "who": """
      select title, industry, count(*) as n, sum(outcome) as booked from (
        select title, industry, case when status = 'converted' then 1
          when status in ('unsubscribed', 'bounced', 'not_interested', 'dead') then 0 end as outcome
        from leads) where outcome is not null group by all""",
    "touches": """
      create or replace temp table t as
      select a.*, l.status, l.converted_at, l.zone,
             row_number() over (partition by a.lead_id order by a.created_at, a.id) as pos,
             count(*) over (partition by a.lead_id) as n_touches,
             string_agg(a.channel, '>') over (partition by a.lead_id order by a.created_at, a.id
               rows between unbounded preceding and unbounded following) as seq
      from acts as a join leads as l using (lead_id)
      where a.action in ('sent', 'email_sent', 'sms_sent', 'linkedin_sent', 'voice_completed', 'connection_sent',
                         'message_sent') and isfinite(a.created_at)""",
    "converting": """
      create or replace temp table conv as
      select lead_id, max_by(id, (created_at, id)) as touch_id from t
      where status = 'converted' and created_at <= converted_at group by lead_id""",
    "what": """
      select subject, count(*) as trials, count(c.touch_id) as booked
      from t left join conv as c on c.touch_id = t.id
      where t.converted_at is null or t.created_at <= t.converted_at group by subject""",
    "when": """
      select dayofweek(timezone(zone, created_at)) as dow, hour(timezone(zone, created_at)) as hr, pos,
             count(*) as trials, count(c.touch_id) as booked
      from t left join conv as c on c.touch_id = t.id group by all""",
    "how": """
      select array_to_string(list_slice(string_split(seq, '>'), 1, 3), '>') as path, pos, count(*) as trials, count(c.touch_id) as booked
      from t left join conv as c on c.touch_id = t.id where pos <= 3 group by all""",
}


@dataclass
class Measure:
    name: str
    seconds: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def fastest(self) -> float:
        return min(self.seconds)

    def as_json(self, reference: float | None) -> dict[str, Any]:
        return {
            "name": self.name, "seconds": self.seconds, "median_s": self.median, "min_s": self.fastest,
            "x_reference": None if not reference else self.median / reference,
            "peak_backend_mb": max(self.peak_mb) if self.peak_mb else None,
        }


def default_dsn() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    out = subprocess.run(["bash", str(ROOT / "scripts" / "db.sh"), "url"], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def timed(conn: Conn, measure: Measure, work: Callable[[], object]) -> None:
    with Footprint(conn) as fp:
        t0 = time.perf_counter()
        work()
        measure.seconds.append(time.perf_counter() - t0)
    if fp.peak_mb is not None:
        measure.peak_mb.append(fp.peak_mb)


# --- the seed's design: pandas ---------------------------------------------------------------------

def pandas_analysis(conn: Conn, client: uuid.UUID) -> dict[str, int]:
    """Fetch the client's rows into Python and count what the detectors count, with pandas."""
    with conn.cursor() as cur:
        cur.execute(LEADS_SQL, {"client": client})
        leads = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description or []])
        cur.execute(ACTIVITIES_SQL, {"client": client})
        acts = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description or []])
    leads["outcome"] = leads["status"].map(lambda s: 1 if s == "converted" else (0 if s in FAILED else None))
    who = leads.dropna(subset=["outcome"]).groupby(["title", "industry"], dropna=False)["outcome"].agg(["count", "sum"])
    t = acts[acts["action"].isin(OUTBOUND)].merge(leads, on="lead_id")
    t["created_at"] = pd.to_datetime(t["created_at"], utc=True)
    t["converted_at"] = pd.to_datetime(t["converted_at"], utc=True)
    t = t.sort_values(["lead_id", "created_at", "id"])
    t["pos"] = t.groupby("lead_id").cumcount() + 1
    before = t[(t["status"] == "converted") & (t["created_at"] <= t["converted_at"])]
    conv = set(before.groupby("lead_id")["id"].last())
    t["booked"] = t["id"].isin(conv)
    trials = t[t["converted_at"].isna() | (t["created_at"] <= t["converted_at"])]
    what = trials.groupby("subject", dropna=False)["booked"].agg(["count", "sum"])
    local = []
    for zone, part in t.groupby("zone"):
        try:
            stamp = part["created_at"].dt.tz_convert(str(zone))
        except (KeyError, ValueError):  # an invalid zone name: read in UTC, as the layer falls through
            stamp = part["created_at"]
        local.append(pd.DataFrame({"dow": stamp.dt.day_of_week, "hr": stamp.dt.hour}, index=part.index))
    t = t.join(pd.concat(local)) if local else t
    when = t.groupby(["dow", "hr", "pos"])["booked"].agg(["count", "sum"])
    t["path"] = t.groupby("lead_id")["channel"].transform(lambda s: ">".join(s.iloc[:3]))
    how = t[t["pos"] <= 3].groupby(["path", "pos"])["booked"].agg(["count", "sum"])
    return {"who": len(who), "what": len(what), "when": len(when), "how": len(how), "converting": len(conv)}


# --- DuckDB fed through COPY -------------------------------------------------------------------------

def duckdb_analysis(conn: Conn, client: uuid.UUID) -> dict[str, int]:
    """COPY the same rows out of PostgreSQL into DuckDB, then the same counts in DuckDB."""
    db = duckdb.connect()
    counts: dict[str, int] = {}
    for table, query in (("leads", LEADS_SQL), ("acts", ACTIVITIES_SQL)):
        buf = io.BytesIO()
        with conn.cursor() as cur:
            bound = query.replace("%(client)s", f"'{uuid.UUID(str(client))}'::uuid")  # a UUID: no quoting issue
            with cur.copy(f"copy ({bound}) to stdout with (format csv, header true)") as copy:
                for chunk in copy:
                    buf.write(chunk)
        path = Path(f"/tmp/bench_refresh_{os.getpid()}_{table}.csv")
        path.write_bytes(buf.getvalue())
        db.execute(f"create or replace table {table} as select * from read_csv('{path}', header = true)")
        path.unlink()
    for name, query in DUCK_ANALYSIS.items():
        rel = db.execute(query)
        if name not in ("touches", "converting"):
            counts[name] = len(rel.fetchall())
    row = db.execute("select count(*) from conv").fetchone()
    counts["converting"] = int(row[0]) if row else 0
    db.close()
    return counts


# --- the host's writes with and without the layer --------------------------------------------------------

WRITES = {
    "single send": """
      do $$ declare r record; begin
        for r in select l.id, l.client_id from public.leads as l where l.client_id = '{client}' order by l.id limit {n}
        loop insert into public.activities (client_id, lead_id, channel, action, created_at)
             values (r.client_id, r.id, 'email', 'sent', now()); end loop; end $$""",
    "single send with snapshot": """
      do $$ declare r record; begin
        for r in select l.id, l.client_id from public.leads as l where l.client_id = '{client}' order by l.id limit {n}
        loop insert into public.activities (client_id, lead_id, channel, action, created_at, content_snapshot)
             values (r.client_id, r.id, 'email', 'sent', now(), jsonb_build_object(
               'subject', 'Question about {{company}}', 'body', 'Hi ' || r.id || ', worth 15 minutes?',
               'pain_points', '["scaling"]'::jsonb, 'cta', 'worth 15 minutes', 'angle', 'curiosity',
               'word_count', 40, 'char_count', 220)); end loop; end $$""",
    "bulk insert": """
      insert into public.activities (client_id, lead_id, channel, action, created_at)
      select l.client_id, l.id, 'linkedin', 'sent', now() from public.leads as l
      where l.client_id = '{client}' order by l.id limit {bulk}""",
    "status to converted": """
      update public.leads set status = 'converted'
      where id in (select l.id from public.leads as l where l.client_id = '{client}' and l.status = 'in_sequence'
                   order by l.id limit {n})""",
}


def layer_triggers(conn: Conn) -> list[tuple[str, str]]:
    rows = conn.execute(
        r"""select c.relname, t.tgname from pg_trigger as t join pg_class as c on c.oid = t.tgrelid
            where c.relnamespace = 'public'::regnamespace and c.relname in ('leads', 'activities')
              and not t.tgisinternal and t.tgname like '%\_ci\_%'"""
    ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def time_write(conn: Conn, statement: str, triggers: list[tuple[str, str]] | None) -> float:
    """One write in a transaction that is rolled back; the layer's triggers disabled when given."""
    with conn.transaction(force_rollback=True):
        for table, trigger in triggers or []:
            conn.execute(f'alter table public."{table}" disable trigger "{trigger}"')
        t0 = time.perf_counter()
        conn.execute(statement)
        return time.perf_counter() - t0


# --- the client -----------------------------------------------------------------------------------------

def build_client(conn: Conn, leads: int, seed: int) -> uuid.UUID:
    cfg = GeneratorConfig(seed=seed, clients=1, leads_per_client=leads, client_name_prefix="bench-refresh",
                          progress=lambda m: print(m, file=sys.stderr, flush=True))
    result = generate(conn, cfg)
    return result.client_ids[0]


def copy_client(conn: Conn, client: uuid.UUID) -> uuid.UUID:
    """A copy of the client with new ids, written as a host's import (triggers on), not analysed."""
    new = uuid.uuid4()
    salt = new.hex
    conn.execute(
        "insert into public.clients (id, name, timezone, icp_industries, icp_titles, icp_company_sizes, icp_locations) "
        "select %s, 'bench-refresh import', timezone, icp_industries, icp_titles, icp_company_sizes, icp_locations "
        "from public.clients where id = %s", (new, client))
    cols = [str(r[0]) for r in conn.execute(
        "select column_name from information_schema.columns where table_schema = 'public' and table_name = 'leads' "
        "and column_name not in ('id', 'client_id', 'campaign_id') and is_generated = 'NEVER'").fetchall()]
    collist = ", ".join(f'"{c}"' for c in cols)
    conn.execute(
        f"insert into public.leads (id, client_id, {collist}) "
        f"select md5(%s || id::text)::uuid, %s, {collist} from public.leads where client_id = %s",
        (salt, new, client))
    acols = [str(r[0]) for r in conn.execute(
        "select column_name from information_schema.columns where table_schema = 'public' "
        "and table_name = 'activities' and column_name not in ('id', 'client_id', 'campaign_id', 'lead_id', "
        "'led_to_booking', 'content_features', 'content_key') and is_generated = 'NEVER'").fetchall()]
    acollist = ", ".join(f'"{c}"' for c in acols)
    conn.execute(
        f"insert into public.activities (client_id, lead_id, {acollist}) "
        f"select %s, md5(%s || lead_id::text)::uuid, {acollist} from public.activities "
        "where client_id = %s order by created_at", (new, salt, client))
    return new


def delete_client(conn: Conn, client: uuid.UUID) -> None:
    conn.execute("delete from public.activities where client_id = %s", (client,))
    conn.execute("delete from public.leads where client_id = %s", (client,))
    conn.execute("delete from public.clients where id = %s", (client,))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--writes", type=int, default=2000, help="single writes per write measurement")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dsn")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the bench clients")
    args = parser.parse_args(argv)
    out_path: Path = args.json or ROOT / "bench-results" / f"bench_refresh-{args.leads}.json"

    with psycopg.connect(args.dsn or default_dsn(), autocommit=True) as conn:
        conn.execute("set statement_timeout = 0")
        t0 = time.perf_counter()
        client = build_client(conn, args.leads, args.seed)
        import_s = time.perf_counter() - t0
        conn.execute("analyze public.leads")
        conn.execute("analyze public.activities")
        sizes = conn.execute(
            "select (select count(*) from public.leads where client_id = %(c)s), "
            "(select count(*) from public.activities where client_id = %(c)s), "
            "(select count(*) from public.activities where client_id = %(c)s and ci_private.is_outbound_action(action))",
            {"c": client}).fetchone()
        assert sizes is not None
        print(f"client {client}: {sizes[0]:,} leads, {sizes[1]:,} activities, {sizes[2]:,} outbound touches "
              f"(generated in {import_s:.1f} s)")
        conn.execute("select public.refresh_conversion_patterns(%s)", (client,))  # warm-up, builds the kept rows

        measures = {name: Measure(name) for name in (
            "sorted pass (reference)", "refresh_conversion_patterns", "detect_who_patterns", "detect_what_patterns",
            "detect_when_patterns", "detect_how_patterns", "seed design: fetch + pandas", "DuckDB via COPY")}
        results: dict[str, dict[str, int]] = {}
        for rnd in range(args.runs):
            order = list(measures) if rnd % 2 == 0 else list(reversed(measures))
            for name in order:
                m = measures[name]
                if name.startswith("sorted"):
                    timed(conn, m, lambda: conn.execute(SORTED_PASS, {"client": client}).fetchone())
                elif name.startswith(("refresh", "detect")):
                    timed(conn, m, lambda n=name: conn.execute(
                        f"select public.{n}(%s)::text", (client,)).fetchone())
                elif name.startswith("seed"):
                    timed(conn, m, lambda: results.__setitem__("pandas", pandas_analysis(conn, client)))
                else:
                    timed(conn, m, lambda: results.__setitem__("duckdb", duckdb_analysis(conn, client)))
            print(f"round {rnd + 1}/{args.runs}: " + ", ".join(f"{n.split(' ')[0]} {m.seconds[-1]:.2f}s"
                                                             for n, m in measures.items()), file=sys.stderr)

        writes: dict[str, dict[str, float]] = {}
        triggers = layer_triggers(conn)
        n, bulk = args.writes, min(args.leads, 20_000)
        for name, template in WRITES.items():
            stmt = template.format(client=client, n=n, bulk=bulk)
            rows = bulk if name == "bulk insert" else n
            on, off = [], []
            for rep in range(max(args.runs, 3)):
                pair = [(on, None), (off, triggers)] if rep % 2 == 0 else [(off, triggers), (on, None)]
                for bucket, trig in pair:
                    bucket.append(time_write(conn, stmt, trig))
            writes[name] = {"rows": rows, "with_layer_s": statistics.median(on), "without_layer_s": statistics.median(off),
                            "ratio": statistics.median(on) / statistics.median(off),
                            "extra_us_per_row": (statistics.median(on) - statistics.median(off)) / rows * 1e6}

        # First refresh of a client the statistics have never seen, then after ANALYZE.
        imported = copy_client(conn, client)
        first = Measure("first refresh after import")
        timed(conn, first, lambda: conn.execute("select public.refresh_conversion_patterns(%s)", (imported,)))
        conn.execute("analyze public.leads")
        conn.execute("analyze public.activities")
        analysed = Measure("refresh after ANALYZE")
        timed(conn, analysed, lambda: conn.execute("select public.refresh_conversion_patterns(%s)", (imported,)))

        if not args.keep:
            delete_client(conn, imported)
            delete_client(conn, client)

    ref = measures["sorted pass (reference)"].median
    refresh = measures["refresh_conversion_patterns"].median
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "client": {"leads": sizes[0], "activities": sizes[1], "outbound_touches": sizes[2], "runs": args.runs},
        "measures": [m.as_json(ref) for m in measures.values()],
        "writes": writes,
        "import": {"first_refresh_s": first.seconds[0], "after_analyze_s": analysed.seconds[0],
                   "ratio": first.seconds[0] / analysed.seconds[0]},
        "analysis_rows": results,
        "goals": {
            "refresh_x_sorted_pass": refresh / ref,
            "pandas_x_refresh": measures["seed design: fetch + pandas"].median / refresh,
            "duckdb_x_refresh": measures["DuckDB via COPY"].median / refresh,
            "first_refresh_x_after_analyze": first.seconds[0] / analysed.seconds[0],
        },
    }

    print(f"\n{'measurement':<32} {'median s':>9} {'min s':>8} {'x ref':>6} {'peak MB':>8}")
    for m in measures.values():
        peak = f"{max(m.peak_mb):.0f}" if m.peak_mb else "-"
        print(f"{m.name:<32} {m.median:>9.3f} {m.fastest:>8.3f} {m.median / ref:>6.2f} {peak:>8}")
    print(f"\n{'host write':<28} {'rows':>6} {'with s':>8} {'without s':>9} {'ratio':>6} {'+us/row':>8}")
    for name, w in writes.items():
        print(f"{name:<28} {w['rows']:>6.0f} {w['with_layer_s']:>8.3f} {w['without_layer_s']:>9.3f} "
              f"{w['ratio']:>6.2f} {w['extra_us_per_row']:>8.1f}")
    g = report["goals"]
    print(f"\nrefresh / sorted pass {g['refresh_x_sorted_pass']:.2f}x (goal <= 3x); "
          f"pandas / refresh {g['pandas_x_refresh']:.2f}x (goal >= 10x); "
          f"DuckDB / refresh {g['duckdb_x_refresh']:.2f}x (goal > 1x); "
          f"first refresh after import / after ANALYZE {g['first_refresh_x_after_analyze']:.2f}x (goal <= 2x)")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
