"""Position-adjusted effects (issue 14) on step-bound sequences.

Real sequences send the same templates at the same step and steps on fixed weekdays; the
chance of booking differs by step. With a step effect and no content or timing effect at all,
a raw per-touch ranking crowns the step-3 template and the step-3 weekday (the confound is
real, shown on the same data), while WHAT, WHEN and HOW, judged against what each touch's
position (and channel) predicts, name (almost) nothing. Planted content effects on step-bound
data are still found.
"""
from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from ci_sidecar.generator import PLANTED, STEP_POOLS, SUBJECTS, Effects, GeneratorConfig, generate

pytestmark = pytest.mark.db

STEP_WEEKDAYS = (0, 2, 3, 1, 0, 2)  # Monday = 0: step 3 on Thursdays
STEP3_SUBJECTS = {SUBJECTS[i] for i in STEP_POOLS[2]["subject"]}
CONFOUND_SEEDS = (301, 302, 303)
WHAT_LISTS = [
    ("subject_patterns", "winning"), ("subject_patterns", "losing"), ("pain_points", "effective"),
    ("pain_points", "ineffective"), ("ctas", "effective"), ("ctas", "ineffective"), ("angles", "effective"),
    ("angles", "ineffective"),
]

_cache: dict[tuple[str, int, str], tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {}


def _patterns(dsn: str, seed: int, kind: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    key = (dsn, seed, kind)
    if key not in _cache:
        if kind == "step_only":
            cfg = GeneratorConfig(seed=seed, leads_per_client=3000, effects=Effects.only("position"),
                                  step_templates=True, step_weekdays=STEP_WEEKDAYS,
                                  client_name_prefix=f"issue 14 step-bound {seed}")
        else:
            # Content effects planted inside their steps' pools, on top of the step effect.
            cfg = GeneratorConfig(seed=seed, leads_per_client=4000, base_touch_rate=0.035,
                                  effects=Effects(position=2.5, subject=3.0, pain_point=2.5, cta=2.5),
                                  step_templates=True, step_weekdays=STEP_WEEKDAYS,
                                  client_name_prefix=f"issue 14 step-bound planted {seed}")
        with psycopg.connect(dsn, autocommit=True) as conn:
            client = generate(conn, cfg).client_ids[0]
            row = conn.execute(
                "select public.detect_what_patterns(%s), public.detect_when_patterns(%s),"
                " public.detect_how_patterns(%s)", (client, client, client),
            ).fetchone()
        assert row is not None
        _cache[key] = (row[0], row[1], row[2])
    return _cache[key]


def _raw_top(rankings: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """The segment a raw per-touch ranking puts first (as the detectors ranked before issue 14: by the
    rate smoothed toward the client's rate, which no position enters)."""
    return max(rankings, key=lambda r: (r["smoothed_rate"], r["sample"], str(r[label])))


@pytest.mark.parametrize("seed", CONFOUND_SEEDS)
def test_raw_ranking_shows_the_confound(dsn: str, seed: int) -> None:
    what, when, _how = _patterns(dsn, seed, "step_only")
    top = _raw_top(what["subject_patterns"]["rankings"], "pattern")
    assert top["pattern"] in STEP3_SUBJECTS, "raw, a step-3 template looks best"
    assert top["raw_significance"] == "above", "and significantly so against the client's rate"
    raw_winners = {r["pattern"] for r in what["subject_patterns"]["rankings"] if r["raw_significance"] == "above"}
    assert raw_winners and raw_winners <= STEP3_SUBJECTS
    day = _raw_top(when["day_rankings"], "day")
    assert day["day_index"] == (STEP_WEEKDAYS[2] + 1) % 7 and day["raw_significance"] == "above"


def test_step_effect_alone_names_almost_nothing(dsn: str) -> None:
    named: list[int] = []
    details: list[Any] = []
    for seed in CONFOUND_SEEDS:
        what, when, how = _patterns(dsn, seed, "step_only")
        assert not what["insufficient_data"] and not when["insufficient_data"]
        found = [r for key, part in WHAT_LISTS for r in what[key][part]]
        found += [r for key in ("best_days", "worst_days", "best_hours", "worst_hours") for r in when[key]]
        found += [r for r in how["channel_rankings"] if r["significance"] != "none"]
        found += how["best_first_channels"]
        for lengths in what["optimal_length"].values():
            found += [r for r in lengths["distribution"] if r["significance"] != "none"]
        named.append(len(found))
        details.append(found)
        # The adjusted figures are there, and the raw ones stay raw.
        row = what["subject_patterns"]["rankings"][0]
        assert {"expected_bookings", "adjusted_lift", "adjusted_lift_ci", "conversion_rate", "lift"} <= set(row)
        lifts = [r["smoothed_adjusted_lift"] for r in what["subject_patterns"]["rankings"]]
        assert lifts == sorted(lifts, reverse=True), "ranked by the adjusted figure"
    assert sum(named) <= 2, f"named on step-bound null content: {named} {details}"


def test_planted_content_is_still_found_on_step_bound_data(dsn: str) -> None:
    what, _when, _how = _patterns(dsn, 311, "planted")
    subjects = what["subject_patterns"]
    assert subjects["winning"] and subjects["winning"][0]["pattern"] == PLANTED["subject"]["value"]
    assert subjects["rankings"][0]["pattern"] == PLANTED["subject"]["value"]
    winner = subjects["winning"][0]
    assert winner["adjusted_lift_ci"][0] > 1 and winner["adjusted_lift"] > 1.3
    pains = what["pain_points"]
    assert pains["effective"] and pains["effective"][0]["pain_point"] == PLANTED["pain_point"]["value"]
    assert what["ctas"]["rankings"][0]["cta"] == PLANTED["cta"]["value"]
    # Nothing from step 3 is named for the step's sake.
    assert not {r["pattern"] for r in subjects["winning"]} & STEP3_SUBJECTS


def test_sums_of_expected_equal_sums_of_observed(dsn: str) -> None:
    """Indirect standardisation on the client's own hazards: over a family that covers every trial
    (local days), expected bookings add up to the observed ones."""
    _what, when, _how = _patterns(dsn, CONFOUND_SEEDS[0], "step_only")
    days = when["day_rankings"]
    observed = sum(r["conversions"] for r in days)
    expected = sum(r["expected_bookings"] for r in days)
    if sum(r["sample"] for r in days) == when["metadata"]["trials"]:
        assert expected == pytest.approx(observed, abs=0.05 * len(days))


def test_client_of_its_own(conn: psycopg.Connection[Any]) -> None:
    """A hand-made client: step 2 always books at 10%, every other step at 2%, and step 2 always
    carries subject B. Raw, B wins by 4x; adjusted, B is exactly what its position predicts."""
    client = conn.execute(
        "insert into public.clients (name, timezone) values ('issue 14 by hand', 'UTC') returning id"
    ).fetchone()
    assert client is not None
    cid: uuid.UUID = client[0]
    # 2000 leads, three emails each; lead i books at step 2 when i % 10 = 0, at step 1 or 3 when i % 50 = 1 / 2.
    conn.execute(
        """
        with l as (
          insert into public.leads (client_id, first_name, status, timezone)
          select %(c)s, 'lead ' || i, 'in_sequence', 'UTC' from generate_series(1, 2000) as i
          returning id, substring(first_name from 6)::int as i
        )
        insert into public.activities (client_id, lead_id, channel, action, subject, content_snapshot, created_at)
        select %(c)s, l.id, 'email', 'sent', s.subject,
               jsonb_build_object('subject', s.subject, 'body', 'Hello there, a short note.', 'word_count', 5),
               timestamptz '2026-03-02 10:00+00' + (l.i %% 40) * interval '1 day' + (k - 1) * interval '3 days'
        from l
        cross join generate_series(1, 3) as k
        cross join lateral (select case k when 2 then 'Subject B' else 'Subject A' || k end as subject) as s
        where k <= case when l.i %% 10 = 0 then 2 when l.i %% 50 = 1 then 1 when l.i %% 50 = 2 then 3 else 3 end
        """,
        {"c": cid},
    )
    conn.execute(
        """
        update public.leads as l
        set status = case when x.booked_at > 0 then 'converted' else 'dead' end::public.lead_status,
            converted_at = case when x.booked_at > 0
              then timestamptz '2026-03-02 12:00+00' + (x.i %% 40) * interval '1 day'
                   + (x.booked_at - 1) * interval '3 days' end
        from (
          select l2.id, substring(l2.first_name from 6)::int as i,
                 case when substring(l2.first_name from 6)::int %% 10 = 0 then 2
                      when substring(l2.first_name from 6)::int %% 50 = 1 then 1
                      when substring(l2.first_name from 6)::int %% 50 = 2 then 3 else 0 end as booked_at
          from public.leads as l2 where l2.client_id = %(c)s
        ) as x
        where l.id = x.id
        """,
        {"c": cid},
    )
    row = conn.execute("select public.detect_what_patterns(%s)", (cid,)).fetchone()
    assert row is not None
    ranked = {r["pattern"]: r for r in row[0]["subject_patterns"]["rankings"]}
    b = ranked["Subject B"]
    assert b["raw_significance"] == "above" and b["lift"] > 2, "raw, B looks like a winner"
    assert b["adjusted_lift"] == pytest.approx(1.0, abs=0.01), "its position predicts every booking"
    assert b["significance"] == "none" and row[0]["subject_patterns"]["winning"] == []
    assert b["adjusted_lift_ci"][0] < 1 < b["adjusted_lift_ci"][1]


def test_generator_real_data_shapes(conn: psycopg.Connection[Any]) -> None:
    """Unique rendered bodies, a constant component and uncontacted leads, as the options say."""
    cfg = GeneratorConfig(seed=17, leads_per_client=500, unique_bodies=True,
                          constant_components=frozenset({"data_quality"}), uncontacted_leads=40,
                          client_name_prefix="issue 14 shapes")
    client = generate(conn, cfg).client_ids[0]
    row = conn.execute(
        """
        select
          (select count(*) from public.leads as l where l.client_id = %(c)s and l.status = 'bounced'
             and not exists (select 1 from public.activities as a where a.lead_id = l.id)),
          (select count(*) from public.activities as a where a.client_id = %(c)s
             and a.content_snapshot ->> 'body' is not null and not a.content_snapshot ? 'derived'),
          (select count(distinct a.content_snapshot ->> 'body') from public.activities as a
             where a.client_id = %(c)s and a.content_snapshot ->> 'body' is not null
               and not a.content_snapshot ? 'derived'),
          (select count(distinct l.als_data_quality) from public.leads as l where l.client_id = %(c)s
             and l.deleted_at is null and l.title <> 'Operations Analyst')
        """, {"c": client},
    ).fetchone()
    assert row is not None
    uncontacted, bodies, distinct_bodies, dq_values = row
    assert uncontacted >= 40
    assert bodies > 500 and distinct_bodies == bodies, "every rendered body (the engine's own snapshots) is its own"
    assert dq_values == 1, "data quality does not vary"
