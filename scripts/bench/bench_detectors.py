"""Benchmark of the WHAT, WHEN and HOW detectors against one sorted pass.

Generates one large client straight in SQL (default 1,000,000 leads with ten
activities each: up to six outbound touches over email, LinkedIn, SMS and voice,
the rest opens and clicks; 80% of the touches carry a content snapshot, the
others only subject, content_preview and metadata, as the host writes today),
then times, each as one statement on a warm cache:

  * the reference: one sorted pass over the client's activities,
    select count(*) from (select row_number() over (partition by lead_id
    order by created_at) from activities where client_id = X) s
  * ci_private.prepare_touches alone (the shared per-touch relation, from the
    touches kept on write in ci_private.lead_touches: a client generated here
    is built whole once, untimed, before the rounds);
  * each public detector alone (each builds the relation itself);
  * all four in one statement (the relation built once, as a refresh does).

Runs --runs rounds, each round every measurement once (so that a drift of the
machine, such as the page cache being reclaimed, weighs on all of them alike),
and prints the median and the fastest seconds of each with their ratios to the
reference (the goal is all four within 2x), the median of the per-round ratios, the peak private memory of the
database backend and the temporary files written (scripts/bench/benchmem.py),
and the size of the per-touch relation. Run with the venv's python:

  CI_DB_PORT=... .venv/bin/python scripts/bench/bench_detectors.py [--leads N]

--reuse times an existing bench client of the same size instead of generating.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from benchlib import default_dsn
from benchmem import Footprint

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 100_000

# One chunk of leads [lo, hi): the leads, then their ten activities each, in an
# order that scatters a lead's activities over the chunk as real inserts would.
CHUNK_SQL = """
create temp table bench_chunk on commit drop as
select
  g as n,
  gen_random_uuid() as id,
  camp.ids[1 + g %% 20] as campaign_id,
  (array['America/New_York', 'America/Chicago', 'America/Denver', 'America/Los_Angeles',
         'Europe/London', 'Europe/Berlin', 'Australia/Sydney', 'Asia/Tokyo'])[1 + (g %% 8)]
    as zone,
  case when g %% 50 = 0 then 'Not/AZone' when g %% 10 = 1 then null end as bad_or_null,
  r.u as outcome_draw,
  case when r.u < 0.08 then 1 + floor(random() * 6)::int
       when r.u < 0.70 then 6
       else 1 + floor(random() * 6)::int end as n_out,
  now() - interval '1 day' * (20 + random() * 340) as first_at,
  (array['hot', 'warm', 'warm', 'cool', 'cool', 'cold', null])[1 + floor(random() * 7)::int] as tier
from generate_series(%(lo)s, %(hi)s - 1) as g
cross join (
  select array_agg(c.id order by c.name) as ids from public.campaigns as c where c.client_id = %(client)s
) as camp
cross join lateral (select random() + g * 0 as u) as r;

insert into public.leads (
  id, client_id, campaign_id, first_name, last_name, title, company, organization_industry,
  status, converted_at, als_tier, timezone, created_at
)
select
  b.id, %(client)s, b.campaign_id, 'First' || b.n, 'Last' || b.n, 'Director', 'Company ' || b.n,
  (array['Dental', 'Legal', 'SaaS', 'Retail'])[1 + b.n %% 4],
  (case when b.outcome_draw < 0.08 then 'converted'
        when b.outcome_draw < 0.70 then (array['unsubscribed', 'bounced', 'not_interested', 'dead'])[1 + b.n %% 4]
        else 'in_sequence' end)::public.lead_status,
  case when b.outcome_draw < 0.08
    then b.first_at + (b.n_out - 1) * interval '3 days' + interval '26 hours' end,
  b.tier,
  case when b.bad_or_null is not null or b.n %% 10 = 1 then b.bad_or_null else b.zone end,
  b.first_at - interval '1 day'
from bench_chunk as b;

insert into public.activities (
  client_id, campaign_id, lead_id, channel, action, sequence_step, subject, content_preview,
  metadata, created_at, led_to_booking, content_snapshot
)
select
  %(client)s, b.campaign_id, b.id, t.channel::public.channel_type,
  case when not t.outbound then (array['opened', 'clicked', 'replied'])[1 + (b.n + k) %% 3]
       when t.channel = 'voice' then 'voice_completed'
       when (b.n + k) %% 3 = 0 then t.channel || '_sent'
       else 'sent' end,
  k,
  case when t.outbound and not t.snap and t.channel = 'email'
    then replace(s.subject, '{company}', 'Company ' || b.n) end,
  case when t.outbound and not t.snap
    then replace(replace(s.body, '{company}', 'Company ' || b.n), '{first_name}', 'First' || b.n) end,
  case when t.outbound and not t.snap then jsonb_build_object('template_id', s.idx) end,
  t.at,
  (b.outcome_draw < 0.08 and t.outbound and k = b.n_out),
  case when t.outbound and t.snap then jsonb_build_object(
    'subject', case when t.channel = 'email' then s.subject end,
    'body', s.body,
    'pain_points', s.pains,
    'cta', s.cta,
    'angle', s.angle,
    'word_count', s.words,
    'char_count', length(s.body),
    'personalization', jsonb_build_object(
      'company_mention', s.body like '%%{company}%%', 'recent_news', (b.n + k) %% 5 = 0,
      'mutual_connection', (b.n + k) %% 11 = 0, 'industry_specific', (b.n + k) %% 3 = 0),
    'personalization_level', (b.n + k) %% 4,
    'touch_number', k) end
from bench_chunk as b
cross join generate_series(1, 10) as k
cross join lateral (
  select
    k <= b.n_out as outbound,
    random() < 0.8 as snap,
    case when k <= b.n_out
      then (array['email', 'linkedin', 'email', 'sms', 'voice', 'email', 'linkedin'])[1 + (b.n * 7 + k * 3) %% 7]
      else 'email' end as channel,
    case when k <= b.n_out
      then b.first_at + (k - 1) * interval '3 days' + interval '1 minute' * floor(random() * 600)
      else b.first_at + interval '1 hour' * (k * 5) end as at
) as t
cross join lateral (
  select
    (b.n + k) %% 8 as idx,
    (array['Question about {company}', 'Quick question', '{first_name} - scaling', 'Partnership opportunity',
           'Introduction', 'Ideas for {company}', 'Following up', 'Re: {company} growth'])[1 + (b.n + k) %% 8]
      as subject,
    'Hi {first_name}, I noticed {company} is growing and your team is stretched. '
      || repeat('We help agencies scale outbound and save hours of manual work every week. ', 1 + (b.n + 2 * k) %% 8)
      || (array['Worth 15 minutes?', 'Open to a quick chat?', 'Let me know.', 'Happy to share a case study.'])
         [1 + (b.n + k) %% 4] as body,
    (array['["scaling", "time"]', '["leads"]', '["cost", "revenue"]', '[]'])[1 + (b.n + 3 * k) %% 4]::jsonb
      as pains,
    (array['worth 15 minutes', 'open to a quick chat', 'let me know', 'happy to share'])[1 + (b.n + k) %% 4]
      as cta,
    (array['roi_focused', 'curiosity', 'social_proof', 'fear_based', 'value_add'])[1 + (b.n + k) %% 5] as angle,
    14 + 13 * (1 + (b.n + 2 * k) %% 8) as words
) as s
order by k, b.n;
"""


@dataclass
class Timing:
    name: str
    seconds: list[float]
    peak_mb: list[float]   # the backend's private memory at its peak (empty: not readable)
    spilled_mb: list[float]  # temporary files written

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def fastest(self) -> float:
        return min(self.seconds)


def bench_client_name(leads: int) -> str:
    return f"bench-detectors-{leads}"


def find_client(conn: psycopg.Connection[tuple[object, ...]], leads: int) -> uuid.UUID | None:
    row = conn.execute(
        "select id from public.clients where name = %s order by created_at desc limit 1",
        (bench_client_name(leads),),
    ).fetchone()
    return None if row is None else uuid.UUID(str(row[0]))


def generate(conn: psycopg.Connection[tuple[object, ...]], leads: int) -> uuid.UUID:
    client = uuid.uuid4()
    conn.execute(
        "insert into public.clients (id, name, timezone) values (%s, %s, 'America/New_York')",
        (client, bench_client_name(leads)),
    )
    conn.execute(
        """insert into public.campaigns (client_id, name, timezone)
           select %s, 'bench ' || lpad(g::text, 2, '0'),
                  (array['America/Chicago', null, 'Europe/Paris', 'Bad/Zone'])[1 + g %% 4]
           from generate_series(1, 20) as g""",
        (client,),
    )
    started = time.perf_counter()
    for lo in range(1, leads + 1, CHUNK):
        hi = min(lo + CHUNK, leads + 1)
        with conn.transaction():
            for statement in CHUNK_SQL.split(";\n\n"):
                conn.execute(statement, {"client": client, "lo": lo, "hi": hi})
        print(f"  generated leads {lo}-{hi - 1} ({time.perf_counter() - started:.0f} s)", flush=True)
    conn.execute("vacuum analyze public.leads")
    conn.execute("vacuum analyze public.activities")
    return client


def run_once(conn: psycopg.Connection[tuple[object, ...]], sql: str, client: uuid.UUID, timing: Timing) -> None:
    with Footprint(conn) as footprint:
        started = time.perf_counter()
        with conn.transaction():
            conn.execute(sql, {"client": client}).fetchall()
        timing.seconds.append(time.perf_counter() - started)
    if footprint.peak_mb is not None:
        timing.peak_mb.append(footprint.peak_mb)
    timing.spilled_mb.append(footprint.spilled_mb)


def timed(conn: psycopg.Connection[tuple[object, ...]], queries: list[tuple[str, str]], client: uuid.UUID,
          runs: int) -> list[Timing]:
    """Every query once per round, rounds repeated: a drift of the machine (page
    cache, other load) then weighs on all measurements alike, not on one."""
    results = [Timing(name, [], [], []) for name, _ in queries]
    for _ in range(runs):
        for timing, (_, sql) in zip(results, queries):
            run_once(conn, sql, client, timing)
    return results


def relation_sizes(conn: psycopg.Connection[tuple[object, ...]], client: uuid.UUID) -> tuple[float, float]:
    """MB of the per-touch relation's two tables (touches, leads); dropped at commit."""
    with conn.transaction():
        conn.execute("select ci_private.prepare_touches(%(client)s)", {"client": client})
        row = conn.execute(
            "select pg_total_relation_size('pg_temp.ci_touches'), pg_total_relation_size('pg_temp.ci_touch_leads')"
        ).fetchone()
        assert row is not None
    return int(str(row[0])) / 2**20, int(str(row[1])) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads of the bench client")
    parser.add_argument("--runs", type=int, default=3, help="rounds (each runs every measurement once; median and fastest reported)")
    parser.add_argument("--reuse", action="store_true", help="reuse an existing bench client of this size")
    args = parser.parse_args(argv)

    with psycopg.connect(default_dsn(), autocommit=True) as conn:
        client = find_client(conn, args.leads) if args.reuse else None
        if client is None:
            print(f"generating a client with {args.leads} leads", flush=True)
            client = generate(conn, args.leads)
        row = conn.execute(
            "select count(*), count(*) filter (where ci_private.is_outbound_action(action)) "
            "from public.activities where client_id = %s",
            (client,),
        ).fetchone()
        assert row is not None
        print(f"client {client}: {row[0]} activities, {row[1]} outbound touches", flush=True)

        # The brief's reference query; PostgreSQL drops the unused row_number() and
        # runs it as a bare scan, so the sorted pass proper reads the row number.
        literal = (
            "select count(*) from (select row_number() over (partition by lead_id order by created_at) "
            "from public.activities where client_id = %(client)s) as s"
        )
        reference = (
            "select max(rn) from (select row_number() over (partition by lead_id order by created_at) as rn "
            "from public.activities where client_id = %(client)s) as s"
        )
        who = conn.execute("select to_regprocedure('public.detect_who_patterns(uuid)') is not null").fetchone()
        with_who = bool(who and who[0])
        queries = [
            ("sorted pass (reference)", reference),
            ("brief's count(*) form (planned as a scan)", literal),
            ("prepare_touches", "select ci_private.prepare_touches(%(client)s)"),
            ("detect_what_patterns", "select public.detect_what_patterns(%(client)s)"),
            ("detect_when_patterns", "select public.detect_when_patterns(%(client)s)"),
            ("detect_how_patterns", "select public.detect_how_patterns(%(client)s)"),
            (
                "what + when + how (one statement)",
                (
                    "select public.detect_what_patterns(%(client)s), public.detect_when_patterns(%(client)s), "
                    "public.detect_how_patterns(%(client)s)"
                ),
            ),
        ]
        if with_who:
            queries.append((
                "who + what + when + how (one statement)",
                (
                    "select ci_private.prepare_touches(%(client)s), public.detect_who_patterns(%(client)s), "
                    "public.detect_what_patterns(%(client)s), public.detect_when_patterns(%(client)s), "
                    "public.detect_how_patterns(%(client)s)"
                ),
            ))
        started = time.perf_counter()
        built = conn.execute("select ci_private.ensure_lead_touches(%s)", (client,)).fetchone()
        if built and built[0]:
            print(f"built the client's lead_touches once: {built[0]} rows in {time.perf_counter() - started:.0f} s",
                  flush=True)
        conn.execute(reference, {"client": client}).fetchall()  # warm the cache
        results = timed(conn, queries, client, args.runs)
        touches_mb, leads_mb = relation_sizes(conn, client)
        kept = conn.execute("select pg_total_relation_size('ci_private.lead_touches')").fetchone()
        kept_mb = int(str(kept[0])) / 2**20 if kept else 0.0

    base, base_fast = results[0].median, results[0].fastest
    print(f"\n{'measurement':<40} {'median s':>9} {'x reference':>12} {'fastest s':>10} {'x reference':>12}"
          f" {'paired x':>9} {'peak MB':>8} {'spilled MB':>10}")
    for r in results:
        peak = f"{max(r.peak_mb):>8.0f}" if r.peak_mb else f"{'n/a':>8}"
        paired = statistics.median(s / b for s, b in zip(r.seconds, results[0].seconds))
        print(f"{r.name:<40} {r.median:>9.2f} {r.median / base:>12.2f} {r.fastest:>10.2f} {r.fastest / base_fast:>12.2f}"
              f" {paired:>9.2f} {peak} {max(r.spilled_mb):>10.0f}")
    print("\npaired x: the median over the rounds of each round's ratio to that round's reference.")
    print("seconds by round:")
    for r in results:
        print(f"  {r.name:<40} " + ", ".join(f"{x:.1f}" for x in r.seconds))
    print("\npeak MB: the database backend's private memory (RssAnon, with its parallel workers') at its peak over "
          "the rounds; spilled MB:")
    print("temporary files written by sorts and hashes. The per-touch relation itself (temporary tables):")
    print(f"{touches_mb:.0f} MB of touches and {leads_mb:.0f} MB of leads; ci_private.lead_touches (all clients,")
    print(f"with its primary key) {kept_mb:.0f} MB.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
