"""The main job on the embedded default: load the demo history and report what is there.

Idempotent: the demo clients have ids fixed by the seed, so a second run finds them and
loads nothing again. Settings come from supabase.toml's [demo] table.
"""
from __future__ import annotations

import argparse
import os
import sys
import textwrap
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from ci_sidecar.generator import Effects, GeneratorConfig, generate, planned_client_ids, soft_deleted_note
from ci_sidecar.wording import sequence_estimate, weight_reason

__all__ = ["FOOTNOTE", "learned_summary", "main", "refresh_and_report", "summary_lines", "summary_rows"]

ROOT = Path(__file__).resolve().parents[2]

SUMMARY_SQL = """
select c.name,
       count(l.id) as leads,
       count(l.id) filter (where ci_private.lead_outcome(l.status::text) = 1) as converted,
       count(l.id) filter (where ci_private.lead_outcome(l.status::text) = 0) as failed,
       count(l.id) filter (where ci_private.lead_outcome(l.status::text) is null) as open,
       (select count(*) from public.activities as a
         where a.client_id = c.id and ci_private.is_outbound_action(a.action)) as touches,
       count(l.id) filter (where exists (
         select 1 from public.activities as a where a.lead_id = l.id and a.led_to_booking)) as marks,
       (select count(*) from public.leads as d
         where d.client_id = c.id and d.deleted_at is not null) as deleted
from public.clients as c
left join public.leads as l on l.client_id = c.id and l.deleted_at is null
where c.id = any(%s)
group by c.id, c.name
order by c.name
"""


# The terms of the refresh report; confidence is the WHO pattern's (ci_private.who_confidence: a logistic
# curve in the leads with an outcome).
FOOTNOTE = ("Only segments whose 95% interval lies above the client's booking rate are named; the intervals are "
            "widened for the number of segments compared at once, so a winner is not just the luckiest of many. "
            "Score weights: how much each part of the lead score (data quality, authority, company fit, timing) "
            "counts, relearned from the booked and failed leads at each refresh. Confidence: from 0 to 1, how much "
            "data backs the patterns; it grows with the leads with an outcome (0.50 at 100, 1.00 from about 260).")


def summary_rows(conn: psycopg.Connection[Any], client_ids: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Per demo client: name, leads (not soft-deleted), converted, failed, open, outbound touches, marks,
    soft-deleted leads."""
    return conn.execute(SUMMARY_SQL, (list(client_ids),)).fetchall()


def summary_lines(rows: Sequence[tuple[Any, ...]]) -> list[str]:
    """The per-client table of summary_rows, with what its columns mean."""
    head = (f"{'client':<16}{'leads':>8}{'deleted':>9}{'booked':>8}{'failed':>8}{'open':>7}{'book rate':>11}"
            f"{'touches':>9}{'marked':>8}")
    lines = [head]
    for name, leads, conv, failed, open_, touches, marks, deleted in rows:
        outcomes = conv + failed
        rate = f"{conv / outcomes:.1%}" if outcomes else "n/a"
        lines.append(f"{name:<16}{leads:>8,}{deleted:>9,}{conv:>8,}{failed:>8,}{open_:>7,}{rate:>11}{touches:>9,}"
                     f"{marks:>8,}")
    lines += [
        "",
        "leads = leads in use; deleted = leads marked deleted in the CRM (soft-deleted), loaded but ignored by",
        "every pattern and score (leads + deleted = the leads copied).",
        "book rate = booked / (booked + failed); open leads are still in sequence and not counted as failures.",
        "marked = outbound touches marked as the one that led to the booking (one per booked lead that had a",
        "touch before booking).",
    ]
    return lines


def _print_summary(rows: Sequence[tuple[Any, ...]]) -> None:
    print()
    for line in summary_lines(rows):
        print(line)


def _winners(node: Any, label: str, limit: int = 2) -> list[str]:
    """Segments whose interval lies above the client's rate, as 'label 31.2% (45 of 144)'."""
    items = node if isinstance(node, list) else []
    out = []
    for item in items:
        if isinstance(item, dict) and item.get("significance") == "above":
            rate = item.get("conversion_rate")
            rate_text = f"{float(rate):.1%}" if isinstance(rate, int | float | str) and rate != "" else "?"
            name = f"{item.get(label)}:00" if label == "hour" else str(item.get(label))
            out.append(f"{name} {rate_text} ({item.get('conversions')} of {item.get('sample')})")
        if len(out) >= limit:
            break
    return out


def _line(title: str, found: list[str]) -> str:
    text = "; ".join(found) if found else "no clear winner yet"
    return "\n".join(textwrap.wrap(text, width=110, initial_indent=f"    {title:<22}", subsequent_indent=" " * 26))


def learned_summary(patterns: dict[str, Any]) -> list[str]:
    """A few lines a sales-ops lead can act on: only winners whose interval clears the client's rate."""
    who = patterns.get("who") or {}
    what = patterns.get("what") or {}
    when = patterns.get("when") or {}
    how = patterns.get("how") or {}
    lines = [
        "    per lead (booked / leads with an outcome):",
        _line("titles", _winners(who.get("title_rankings"), "title")),
        _line("industries", _winners(who.get("industry_rankings"), "industry")),
        "    per touch (touches that became the booking / touches sent):",
        _line("subjects", _winners((what.get("subject_patterns") or {}).get("rankings")
                                   or (what.get("subject_patterns") or {}).get("winning"), "pattern")),
        _line("pain points", _winners((what.get("pain_points") or {}).get("rankings")
                                      or (what.get("pain_points") or {}).get("effective"), "pain_point")),
        _line("calls to action", _winners((what.get("ctas") or {}).get("rankings")
                                          or (what.get("ctas") or {}).get("effective"), "cta")),
        _line("local days", _winners(when.get("best_days"), "day")),
        _line("local hours", _winners(when.get("best_hours"), "hour")),
        "    channel sequences (each step judged only over leads that reached it):",
        _line("sequences", [
            f"{' > '.join(map(str, x.get('sequence') or []))}: "
            + sequence_estimate(float(x.get("booking_probability") or 0), x.get("sample_size"))
            for x in (how.get("winning_sequences") or [])[:2]
            if isinstance(x, dict) and x.get("significance") == "above"
        ]),
    ]
    learning = who.get("weight_learning") or {}
    if learning:
        applied = "new weights applied" if learning.get("applied") else "kept the current weights"
        text = f"{applied}: {weight_reason(learning.get('reason', ''))}"
        lines += textwrap.wrap(text, width=110, initial_indent=f"    {'score weights':<22}",
                               subsequent_indent=" " * 26)
    warnings = [w for p in (who, what, when, how) for w in (p.get("health_warnings") or [])]
    if warnings:
        lines.append(f"    {'warnings':<22}" + "; ".join(sorted(set(map(str, warnings)))))
    return lines


def refresh_and_report(conn: psycopg.Connection[Any], client_ids: Sequence[Any]) -> None:
    """Refresh each demo client's patterns and print what was learned."""
    print("\nRefreshing patterns (the weekly job, run now) ...", file=sys.stderr)
    for cid in client_ids:
        row = conn.execute("select public.refresh_conversion_patterns(%s)", (cid,)).fetchone()
        status = row[0].get("status") if row and isinstance(row[0], dict) else "?"
        got = conn.execute(
            "select c.name, public.get_conversion_patterns(c.id) from public.clients as c where c.id = %s", (cid,)
        ).fetchone()
        if not got:
            continue
        name, patterns = got
        who = patterns.get("who") or {}
        print(f"\n{name}: refresh {status}; {who.get('sample_size', 0):,} leads with an outcome, "
              f"confidence {float(who.get('confidence') or 0):.2f}")
        for line in learned_summary(patterns):
            print(line)
    print()
    for line in textwrap.wrap(FOOTNOTE, width=110):
        print(line)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Load the demo history into the database and summarise it.")
    parser.add_argument("--dsn", help="database URL (default: $DATABASE_URL)")
    args = parser.parse_args(argv)
    dsn = args.dsn or os.environ.get("DATABASE_URL")
    if not dsn:
        parser.error("--dsn or DATABASE_URL is required")
    with open(ROOT / "supabase.toml", "rb") as fh:
        demo = tomllib.load(fh).get("demo", {})
    prefix = "Demo client"
    cfg = GeneratorConfig(
        seed=int(demo.get("seed", 42)),
        clients=int(demo.get("clients", 4)),
        leads_per_client=int(demo.get("leads_per_client", 2500)),
        effects=Effects.planted(),
        client_name_prefix=prefix,
        id_salt=0,
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = planned_client_ids(cfg)
        existing = conn.execute("select count(*) from public.clients where id = any(%s)", (ids,)).fetchone()
        if existing and existing[0] == len(ids):
            print(f"demo history already loaded ({existing[0]} clients): nothing loaded again", file=sys.stderr)
        elif existing and existing[0] > 0:
            raise SystemExit("some demo clients exist but not all: run scripts/db.sh reset, then this again")
        else:
            print(f"loading demo history: {cfg.clients} clients x {cfg.leads_per_client:,} leads "
                  f"(seed {cfg.seed}, planted effects on)", file=sys.stderr)
            result = generate(conn, cfg)
            deleted = f" ({soft_deleted_note(result.deleted).removesuffix('; ')})" if result.deleted else ""
            print(f"loaded {result.leads:,} leads{deleted} and {result.activities:,} activities in "
                  f"{result.seconds:.1f} s", file=sys.stderr)
        _print_summary(summary_rows(conn, ids))
        refresh_and_report(conn, ids)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
