"""Benchmark of the ALS scorer and the WHO detector with its weight fit (issue 3).

Loads one large client straight in SQL (default 1,000,000 leads, each with one
to six outbound touches; outcomes drawn with planted WHO effects: title, industry,
size band, funding, hiring), then prints, each the median of --repeat runs on a
warm cache:

  1. bulk rescore of the client's leads (ci_private.rescore_leads, one
     set-based UPDATE) vs a no-op UPDATE of the same rows
     (set als_score = als_score): goal <= 2x;
  2. COPY of --insert-leads new leads (default 100,000) with the scoring
     trigger vs with it disabled: goal <= 1.5x;
  3. public.detect_who_patterns on the large client, which includes the
     in-database weight fit (PL/Python), and its parts: the learning data
     (ci_private.als_learning_rows) and the fit alone: goal well under 10 s;
     with the peak private memory of the database backend (and its parallel
     workers) during the detector and the temporary files it wrote
     (scripts/bench/benchmem.py).

Run with the venv's python against your own cluster:

  CI_DB_PORT=... .venv/bin/python scripts/bench/bench_scoring.py [--leads N] [--reuse]

--reuse times an existing bench client of the same size instead of loading it
again. The script disables the scoring trigger only inside its own insert runs
and always enables it again.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from benchlib import default_dsn
from benchmem import Footprint

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 100_000

LOAD_LEADS = """
insert into public.leads (
  id, client_id, email, email_verified, phone, phone_verified, linkedin_url, personal_email, title, company,
  organization_industry, organization_employee_count, organization_country, organization_is_hiring,
  organization_latest_funding_date, employment_start_date, bounce_count, status, converted_at,
  created_at, updated_at
)
select
  x.id, %(client)s, 'lead' || x.g || '@example.com', x.u1 < 0.7, '+1555' || x.g, x.u2 < 0.3,
  case when x.u3 < 0.6 then 'https://linkedin.example/in/' || x.g end,
  case when x.u4 < 0.2 then 'p' || x.g || '@mail.example' end,
  x.title, 'Company ' || x.g, x.industry, x.employees, x.country, x.hiring, x.funded, x.role_start,
  case when x.status = 'bounced' then 1 else 0 end,
  x.status::public.lead_status,
  case when x.status = 'converted' then x.first_touch + interval '5 days' end,
  x.first_touch - interval '3 days', x.first_touch - interval '3 days'
from (
  select
    s.*,
    case
      when s.u_out < least(0.9, 0.04 * s.factor) then 'converted'
      when s.u_open < 0.15 then 'in_sequence'
      else (array['not_interested', 'dead', 'unsubscribed', 'bounced'])[1 + floor(s.u5 * 4)::int]
    end as status
  from (
    select
      r.*,
      (case when r.title in ('VP of Marketing', 'Vice President, Marketing') then 3.0 else 1.0 end)
      * (case when r.industry = 'Dental' then 2.5 else 1.0 end)
      * (case when r.employees between 16 and 30 then 2.0 else 1.0 end)
      * (case when r.funded >= (r.first_touch::date - 365) then 2.0 else 1.0 end)
      * (case when r.hiring then 1.5 else 1.0 end) as factor
    from (
      select
        g,
        gen_random_uuid() as id,
        random() as u1, random() as u2, random() as u3, random() as u4, random() as u5,
        random() as u_out, random() as u_open,
        (array['VP of Marketing', 'Vice President, Marketing', 'CEO', 'Owner', 'Founder', 'Marketing Director',
               'Director of Sales', 'Head of Growth', 'Marketing Manager', 'Office Manager',
               'Sr. Manager, Operations', 'Team Lead', 'Marketing Coordinator', 'CFO',
               'Practice Administrator', null])[1 + floor(random() * 16)::int] as title,
        (array['Dental', 'Legal', 'Accounting', 'Real Estate', 'Construction', 'Healthcare', 'Retail',
               'SaaS'])[1 + floor(random() * 8)::int] as industry,
        greatest(1, round(exp(3.3 + 0.9 * (random() + random() + random() - 1.5) * 2)))::int as employees,
        (array['US', 'UK', 'CA', 'AU', 'DE'])[1 + floor(random() * 5)::int] as country,
        random() < 0.3 as hiring,
        case when random() < 0.35 then (now() - interval '1 day' * (30 + random() * 1100))::date end as funded,
        (now() - interval '1 day' * (30 + random() * 1500))::date as role_start,
        now() - interval '1 day' * (20 + random() * 380) as first_touch
      from generate_series(%(lo)s, %(hi)s - 1) as g
    ) as r
  ) as s
) as x
"""

LOAD_ACTIVITIES = """
insert into public.activities (client_id, lead_id, channel, action, sequence_step, created_at)
select l.client_id, l.id,
  (array['email', 'linkedin', 'email', 'sms', 'voice', 'email'])[k]::public.channel_type,
  case when k = 5 then 'voice_completed' else 'sent' end,
  k,
  l.created_at + interval '3 days' + interval '2 days' * (k - 1)
from public.leads as l
cross join lateral generate_series(1, 1 + (abs(hashtext(l.id::text)) %% 6)) as k
where l.client_id = %(client)s and l.id >= %(lo_id)s and l.id < %(hi_id)s
"""


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def ensure_client(conn: psycopg.Connection[tuple[object, ...]], leads: int, reuse: bool) -> uuid.UUID:
    name = f"bench scoring {leads}"
    if reuse:
        row = conn.execute(
            "select c.id from public.clients as c where c.name = %s and "
            "(select count(*) from public.leads as l where l.client_id = c.id) >= %s limit 1",
            (name, leads),
        ).fetchone()
        if row is not None:
            print(f"reusing client {row[0]} ({name})", flush=True)
            return uuid.UUID(str(row[0]))
    client = uuid.uuid4()
    conn.execute(
        "insert into public.clients (id, name, icp_industries, icp_company_sizes, icp_locations) "
        "values (%s, %s, %s, %s, %s)",
        (client, name, ["Dental", "Legal", "Accounting"], ["11-50", "51-200"], ["US", "UK", "CA"]),
    )
    t0 = time.perf_counter()
    for lo in range(0, leads, CHUNK):
        hi = min(lo + CHUNK, leads)
        conn.execute(LOAD_LEADS, {"client": client, "lo": lo, "hi": hi})
        print(f"  leads {hi:,}/{leads:,} ({time.perf_counter() - t0:.0f} s)", flush=True)
    # Activities by ranges of lead ids (uuid v4: uniform), so each chunk stays small.
    bounds = [uuid.UUID(int=(i * (1 << 128)) // 16) for i in range(16)] + [uuid.UUID(int=(1 << 128) - 1)]
    for i in range(16):
        conn.execute(LOAD_ACTIVITIES, {"client": client, "lo_id": bounds[i], "hi_id": bounds[i + 1]})
        print(f"  activities {i + 1}/16 ({time.perf_counter() - t0:.0f} s)", flush=True)
    conn.execute("vacuum analyze public.leads")
    conn.execute("vacuum analyze public.activities")
    print(f"loaded {leads:,} leads in {time.perf_counter() - t0:.0f} s", flush=True)
    return client


def bench_rescore(conn: psycopg.Connection[tuple[object, ...]], client: uuid.UUID, repeat: int) -> dict[str, float]:
    noop: list[float] = []
    rescore: list[float] = []
    for _ in range(repeat):
        noop.append(timed(lambda: conn.execute(
            "update public.leads set als_score = als_score where client_id = %s and deleted_at is null", (client,))))
        conn.execute("vacuum public.leads")
        rescore.append(timed(lambda: conn.execute("select ci_private.rescore_leads(%s)", (client,))))
        conn.execute("vacuum public.leads")
    a, b = statistics.median(rescore), statistics.median(noop)
    return {"rescore_s": a, "noop_update_s": b, "ratio": a / b}


def insert_buffer(client: uuid.UUID, n: int) -> str:
    rng = random.Random(5)
    titles = ["VP of Marketing", "CEO", "Owner", "Marketing Director", "Head of Growth", "Marketing Manager",
              "Team Lead", "Marketing Coordinator", "Sr. Manager, Operations", "Founder"]
    industries = ["Dental", "Legal", "Accounting", "Real Estate", "Retail", "SaaS"]
    out = io.StringIO()
    for i in range(n):
        out.write("\t".join([
            str(uuid.UUID(int=rng.getrandbits(128), version=4)), str(client), f"ins{i}@example.com",
            "t" if i % 3 else "f", f"+1555{i:07d}", "f", f"https://linkedin.example/in/{i}" if i % 2 else "\\N",
            rng.choice(titles), f"Company {i}", rng.choice(industries), str(rng.randint(1, 400)),
            rng.choice(["US", "UK", "DE"]), "t" if i % 4 == 0 else "f",
            f"2026-{1 + i % 12:02d}-15" if i % 3 == 0 else "\\N", f"202{i % 6}-0{1 + i % 9}-01", "new",
        ]) + "\n")
    return out.getvalue()


def bench_insert(conn: psycopg.Connection[tuple[object, ...]], n: int, repeat: int) -> dict[str, Any]:
    client = uuid.uuid4()
    conn.execute(
        "insert into public.clients (id, name, icp_industries, icp_company_sizes, icp_locations) "
        "values (%s, 'bench insert', %s, %s, %s)",
        (client, ["Dental", "Legal"], ["11-50", "51-200"], ["US", "UK"]),
    )
    data = insert_buffer(client, n)
    cols = ("id, client_id, email, email_verified, phone, phone_verified, linkedin_url, title, company, "
            "organization_industry, organization_employee_count, organization_country, organization_is_hiring, "
            "organization_latest_funding_date, employment_start_date, status")

    def copy() -> None:
        with conn.cursor() as cur, cur.copy(f"copy public.leads ({cols}) from stdin") as cp:
            cp.write(data)

    def reset() -> None:
        conn.execute("delete from public.leads where client_id = %s", (client,))
        conn.execute("vacuum public.leads")

    with_trigger: list[float] = []
    without: list[float] = []
    try:
        for _ in range(repeat):
            conn.execute("alter table public.leads disable trigger leads_ci_score_ins")
            without.append(timed(copy))
            conn.execute("alter table public.leads enable trigger leads_ci_score_ins")
            reset()
            with_trigger.append(timed(copy))
            reset()
    finally:
        conn.execute("alter table public.leads enable trigger leads_ci_score_ins")
        conn.execute("delete from public.clients where id = %s", (client,))
    a, b = statistics.median(with_trigger), statistics.median(without)
    # Each run's ratio to the run just before it without the trigger: a drift
    # of the machine between runs weighs on both sides of a pair alike.
    paired = [w / o for w, o in zip(with_trigger, without)]
    return {"with_trigger_s": a, "without_trigger_s": b, "ratio": a / b,
            "paired_ratio": statistics.median(paired), "paired_ratios": paired,
            "trigger_us_per_row": (a - b) / n * 1e6, "insert_us_per_row": b / n * 1e6}


def bench_who(conn: psycopg.Connection[tuple[object, ...]], client: uuid.UUID, repeat: int) -> dict[str, object]:
    has_fit = conn.execute("select ci_private.als_fit_available()").fetchone()
    detect: list[float] = []
    rows: list[float] = []
    fit: list[float] = []
    pattern: dict[str, Any] = {}
    arrays: tuple[Any, ...] | None = None
    peak: list[float] = []
    spilled: list[float] = []
    for _ in range(repeat):
        with Footprint(conn) as footprint:
            t0 = time.perf_counter()
            got = conn.execute("select public.detect_who_patterns(%s)", (client,)).fetchone()
            detect.append(time.perf_counter() - t0)
        if footprint.peak_mb is not None:
            peak.append(footprint.peak_mb)
        spilled.append(footprint.spilled_mb)
        pattern = got[0] if got and isinstance(got[0], dict) else {}
        t0 = time.perf_counter()
        arrays = conn.execute(
            "select array_agg(data_quality), array_agg(authority), array_agg(company_fit), "
            "array_agg(timing), array_agg(risk), array_agg(converted), array_agg(fold_counts), count(*) "
            "from ci_private.als_learning_rows(%s)", (client,)).fetchone()
        rows.append(time.perf_counter() - t0)
        if has_fit and has_fit[0] and arrays is not None:
            t0 = time.perf_counter()
            conn.execute(
                "select ci_private.fit_als_weights(%s, %s, %s, %s, %s, %s, %s, "
                "ci_private.als_default_weights(), 1.0, '{}')", arrays[:7])
            fit.append(time.perf_counter() - t0)
    learning = pattern.get("weight_learning")
    rankings = pattern.get("title_rankings")
    top = rankings[0].get("title") if isinstance(rankings, list) and rankings else None
    return {
        "detect_who_patterns_s": statistics.median(detect),
        "detect_who_runs_s": detect,
        "detect_who_peak_mb": max(peak) if peak else None,
        "detect_who_spilled_mb": max(spilled),
        "learning_rows_s": statistics.median(rows),
        "fit_s": statistics.median(fit) if fit else None,
        "learning_groups": int(str(arrays[7])) if arrays is not None else None,
        "sample_size": pattern.get("sample_size"),
        "decision": {k: learning.get(k) for k in ("applied", "reason", "auc_current", "auc_candidate")}
        if isinstance(learning, dict) else None,
        "top_title": top,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--insert-leads", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="time an existing bench client of this size")
    parser.add_argument("--skip", action="append", default=[], choices=["rescore", "insert", "who"])
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    dsn = args.dsn or default_dsn()
    figures: dict[str, object] = {"leads": args.leads}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("set jit = off")
        client = ensure_client(conn, args.leads, args.reuse)
        if "rescore" not in args.skip:
            r = bench_rescore(conn, client, args.repeat)
            figures["rescore"] = r
            print(f"rescore {args.leads:,} leads: {r['rescore_s']:.2f} s; no-op UPDATE of the same rows: "
                  f"{r['noop_update_s']:.2f} s; ratio {r['ratio']:.2f} (goal <= 2)", flush=True)
        if "insert" not in args.skip:
            ins = bench_insert(conn, args.insert_leads, args.repeat)
            figures["insert"] = ins
            print(f"COPY {args.insert_leads:,} leads: with the scoring trigger {ins['with_trigger_s']:.2f} s, "
                  f"without {ins['without_trigger_s']:.2f} s; ratio {ins['ratio']:.2f} (goal <= 1.5; "
                  f"paired {ins['paired_ratio']:.2f}: {', '.join(f'{x:.2f}' for x in ins['paired_ratios'])}); "
                  f"trigger {ins['trigger_us_per_row']:.1f} us/row over {ins['insert_us_per_row']:.1f} us/row",
                  flush=True)
        if "who" not in args.skip:
            w = bench_who(conn, client, args.repeat)
            figures["who"] = w
            runs = w["detect_who_runs_s"]
            listed = ", ".join(f"{x:.2f}" for x in runs) if isinstance(runs, list) else "n/a"
            print(f"detect_who_patterns on {args.leads:,} leads (with the fit): {w['detect_who_patterns_s']:.2f} s "
                  f"(goal well under 10 s; runs {listed}); "
                  f"learning rows {w['learning_rows_s']:.2f} s "
                  f"({w['learning_groups']} groups); fit alone "
                  f"{'n/a' if w['fit_s'] is None else format(w['fit_s'], '.2f') + ' s'}", flush=True)
            print(f"  sample {w['sample_size']}, top title {w['top_title']!r}, decision {w['decision']}", flush=True)
            peak = w["detect_who_peak_mb"]
            print(f"  memory: the backend's private memory (RssAnon, with its parallel workers') peaked at "
                  f"{'n/a' if peak is None else format(peak, '.0f') + ' MB'}; "
                  f"temporary files {w['detect_who_spilled_mb']:.0f} MB", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
