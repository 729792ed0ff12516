"""The WHO detector and the in-database weight learning on generated data.

* Planted WHO effects (title "VP of Marketing", industry Dental, 16-30
  employees, funding): the planted winners rank first, and every count, rate
  and lift matches an independent computation in Python from the raw rows
  (outcomes, first outbound touch, timing flags as of it).
* No effect at all (several seeds): lifts stay near 1, (almost) nothing is
  significant, no weights are applied.
* Effects planted only in what the timing component measures (funding,
  hiring, new role): the learned weights are applied and raise the AUC of the
  score on a second client's data that the fit never saw; applying them
  rescores the leads, and the next refresh moves them by at most one step.
* The pass over the leads, made to run in parallel workers, counts exactly
  what it counts in one process.
"""
from __future__ import annotations

import calendar
import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg.types.json import Jsonb

from ci_sidecar.generator import PLANTED, Effects, GeneratorConfig, generate
from ci_stats.weights import COMPONENT_MAX, DEFAULT_WEIGHTS, KEYS, weighted_auc

pytestmark = pytest.mark.db

Conn = psycopg.Connection[Any]
OUTBOUND = {"sent", "email_sent", "sms_sent", "linkedin_sent", "voice_completed", "connection_sent", "message_sent"}
FAILED = {"unsubscribed", "bounced", "not_interested", "dead"}
SIZE_BANDS = [(1, 5), (6, 15), (16, 30), (31, 50), (51, 100), (101, 500), (501, None)]


@dataclass(frozen=True)
class World:
    planted: uuid.UUID
    nulls: list[uuid.UUID]
    timing_train: uuid.UUID
    timing_test: uuid.UUID


# Fixed ids (id_salt): the folds of the out-of-sample check hash the lead ids,
# so the data and every decision are the same on every run. The module's own
# clients from an earlier run are removed first.
SALT = 303


def _generate(conn: Conn, prefix: str, seed: int, leads: int, effects: Effects) -> uuid.UUID:
    conn.execute("delete from public.clients where name like %s", (f"{prefix} %",))
    cfg = GeneratorConfig(seed=seed, leads_per_client=leads, effects=effects, id_salt=SALT,
                          client_name_prefix=prefix)
    return generate(conn, cfg).client_ids[0]


@pytest.fixture(scope="module")
def world(dsn: str) -> Iterator[World]:
    timing = Effects.only("funded", "hiring", "new_role")
    with psycopg.connect(dsn, autocommit=True) as conn:
        w = World(
            planted=_generate(conn, "WHO planted", 41, 3000, Effects.planted()),
            nulls=[_generate(conn, f"WHO null {seed}", seed, 1500, Effects.none()) for seed in (51, 52, 53)],
            timing_train=_generate(conn, "WHO timing", 61, 3000, timing),
            timing_test=_generate(conn, "WHO heldout", 62, 3000, timing),
        )
        yield w
        # Leave no large clients behind for the tests that refresh every client.
        conn.execute("delete from public.clients where id = any(%s)",
                     ([w.planted, *w.nulls, w.timing_train, w.timing_test],))


def who(conn: Conn, client: uuid.UUID) -> dict[str, Any]:
    row = conn.execute("select public.detect_who_patterns(%s)", (client,)).fetchone()
    assert row is not None and isinstance(row[0], dict)
    return row[0]


# --- the independent computation ---------------------------------------------------------------


def months_before(day: dt.date, months: int) -> dt.date:
    total = day.year * 12 + (day.month - 1) - months
    year, month = divmod(total, 12)
    return dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


@dataclass(frozen=True)
class Outcome:
    converted: int
    title: str | None
    industry: str | None
    employees: int | None
    new_role: bool
    hiring: bool
    funded: bool


def outcomes_from_raw_rows(conn: Conn, client: uuid.UUID) -> list[Outcome]:
    first: dict[uuid.UUID, dt.datetime] = {}
    for lead_id, action, at in conn.execute(
            "select lead_id, action, created_at from public.activities where client_id = %s", (client,)):
        if action in OUTBOUND and (lead_id not in first or at < first[lead_id]):
            first[lead_id] = at
    out: list[Outcome] = []
    for (lead_id, status, deleted, title, industry, employees, hiring, funded, started, created) in conn.execute(
            "select id, status::text, deleted_at, title, organization_industry, organization_employee_count,"
            " organization_is_hiring, organization_latest_funding_date, employment_start_date, created_at"
            " from public.leads where client_id = %s", (client,)):
        if deleted is not None or (status != "converted" and status not in FAILED):
            continue
        as_of = first.get(lead_id, created).astimezone(dt.UTC).date()
        out.append(Outcome(
            converted=1 if status == "converted" else 0,
            title=title, industry=industry, employees=employees,
            new_role=started is not None and months_before(as_of, 6) < started <= as_of,
            hiring=bool(hiring),
            funded=funded is not None and months_before(as_of, 12) <= funded <= as_of,
        ))
    return out


def rate(rows: list[Outcome]) -> tuple[int, int]:
    return sum(r.converted for r in rows), len(rows)


def test_planted_winners_rank_first(conn: Conn, world: World) -> None:
    p = who(conn, world.planted)
    assert p["type"] == "who" and p["insufficient_data"] is False
    assert p["title_rankings"][0]["title"] == PLANTED["title"]["value"]
    assert set(p["title_rankings"][0]["raw_titles"]) == set(PLANTED["title"]["raw"])
    assert p["industry_rankings"][0]["industry"] == PLANTED["industry"]["value"]
    spot = p["size_analysis"]["sweet_spot"]
    assert (spot["min"], spot["max"]) == (PLANTED["size"]["min"], PLANTED["size"]["max"])
    for winner in (p["title_rankings"][0], p["industry_rankings"][0], spot):
        assert winner["significance"] == "above"
    signals = p["timing_signals"]
    assert signals["funded_lift"] > 1.4
    assert signals["segments"]["funded"][0]["flag"] is True
    assert signals["segments"]["funded"][0]["significance"] == "above"
    # Rankings by smoothed rate; conversion_rate stays the raw rate.
    for key in ("title_rankings", "industry_rankings"):
        smoothed = [e["smoothed_rate"] for e in p[key]]
        assert smoothed == sorted(smoothed, reverse=True)
        for e in p[key]:
            assert e["conversion_rate"] == pytest.approx(e["conversions"] / e["sample"], abs=1e-4)
    assert p["confidence"] == 1.0 and p["sample_size"] > 2000


def test_counts_rates_and_lifts_match_an_independent_computation(conn: Conn, world: World) -> None:
    p = who(conn, world.planted)
    rows = outcomes_from_raw_rows(conn, world.planted)
    conversions, n = rate(rows)
    assert (p["sample_size"], p["conversions"]) == (n, conversions)
    overall = conversions / n
    assert p["baseline_rate"] == pytest.approx(overall, abs=1e-4)

    def check(entry: dict[str, Any], group: list[Outcome]) -> None:
        c, m = rate(group)
        assert (entry["conversions"], entry["sample"]) == (c, m), entry
        assert entry["conversion_rate"] == pytest.approx(c / m, abs=1e-4)
        assert entry["lift"] == pytest.approx(c / m / overall, abs=0.006)

    by_industry: dict[str, list[Outcome]] = defaultdict(list)
    for r in rows:
        if r.industry and r.industry.strip():
            by_industry[r.industry.strip().lower()].append(r)
    assert len(p["industry_rankings"]) == len(by_industry)
    for e in p["industry_rankings"]:
        check(e, by_industry[e["industry_key"]])

    for e in p["size_analysis"]["distribution"]:
        lo, hi = SIZE_BANDS[e["band"] - 1]
        check(e, [r for r in rows if r.employees is not None and r.employees >= lo and (hi is None or r.employees <= hi)])

    for e in p["title_rankings"]:
        check(e, [r for r in rows if r.title in set(e["raw_titles"])])
    vp = [r for r in rows if r.title in set(PLANTED["title"]["raw"])]
    check(p["title_rankings"][0], vp)

    for name in ("new_role", "hiring", "funded"):
        c1, m1 = rate([r for r in rows if getattr(r, name)])
        c0, m0 = rate([r for r in rows if not getattr(r, name)])
        assert p["timing_signals"][f"{name}_lift"] == pytest.approx((c1 / m1) / (c0 / m0), abs=0.006), name


def test_no_effect_no_winners_and_no_new_weights(conn: Conn, world: World) -> None:
    significant = 0
    for client in world.nulls:
        p = who(conn, client)
        assert p["insufficient_data"] is False
        entries = p["title_rankings"] + p["industry_rankings"] + p["size_analysis"]["distribution"]
        entries += [e for seg in p["timing_signals"]["segments"].values() for e in seg]
        significant += sum(e["significance"] != "none" for e in entries)
        for name in ("new_role_lift", "hiring_lift", "funded_lift"):
            assert 0.5 <= p["timing_signals"][name] <= 2.0, (name, p["timing_signals"])
            assert 0.7 <= p["timing_signals"]["smoothed"][name] <= 1.4, (name, p["timing_signals"])
        for e in p["title_rankings"] + p["industry_rankings"]:
            assert 0.7 <= e["smoothed_lift"] <= 1.4, e
        learning = p["weight_learning"]
        assert learning["applied"] is False, learning
        assert p["recommended_weights"] == pytest.approx(DEFAULT_WEIGHTS)
    assert significant <= 1


def learning_rows(conn: Conn, client: uuid.UUID) -> tuple[np.ndarray[Any, Any], ...]:
    rows = conn.execute(
        "select data_quality, authority, company_fit, timing, risk, converted, fold_counts"
        " from ci_private.als_learning_rows(%s)", (client,)).fetchall()
    x = np.array([r[:4] for r in rows], dtype=np.float64)
    risk = np.array([r[4] for r in rows], dtype=np.float64)
    y = np.array([r[5] for r in rows], dtype=np.float64)
    counts = np.array([sum(r[6]) for r in rows], dtype=np.float64)
    return x, risk, y, counts


def score_auc(weights: dict[str, float], data: tuple[np.ndarray[Any, Any], ...]) -> float:
    x, risk, y, counts = data
    z = (x / np.asarray(COMPONENT_MAX)) @ np.array([weights[k] for k in KEYS]) + 0.15 * (1 - risk / 15)
    auc = weighted_auc(z, y, counts)
    assert auc is not None
    return auc


def test_timing_signal_learned_weights_raise_held_out_auc(conn: Conn, world: World) -> None:
    p = who(conn, world.timing_train)
    learning = p["weight_learning"]
    assert learning["status"] == "fitted" and learning["applied"] is True, learning
    assert learning["auc_candidate"] > learning["auc_current"]
    new = learning["new_weights"]
    assert new["timing"] > DEFAULT_WEIGHTS["timing"]
    assert p["recommended_weights"] == new
    assert sum(new.values()) == pytest.approx(0.85, abs=1e-9)
    assert all(0.05 <= v <= 0.5 for v in new.values())
    assert max(abs(new[k] - DEFAULT_WEIGHTS[k]) for k in KEYS) <= 0.05 + 1e-4
    # A second client the fit never saw: the learned weights rank its converters better.
    held_out = learning_rows(conn, world.timing_test)
    assert score_auc(new, held_out) > score_auc(DEFAULT_WEIGHTS, held_out)
    # The learning data that the sidecar would read is the data the fit used.
    _, _, _, counts = learning_rows(conn, world.timing_train)
    assert int(counts.sum()) == p["sample_size"] == learning["n"]


def test_applying_learned_weights_rescores_and_the_next_step_is_bounded(conn: Conn, world: World) -> None:
    client = world.timing_train
    before = who(conn, client)
    decision = before["weight_learning"]
    assert decision["applied"] is True
    result = conn.execute("select ci_private.apply_als_weights(%s, %s, %s)",
                          (client, Jsonb(decision["new_weights"]), Jsonb(decision))).fetchone()
    assert result is not None and result[0]["applied"] is True
    used = conn.execute(
        "select count(*), count(*) filter (where als_weights_used = %s) from public.leads"
        " where client_id = %s and deleted_at is null", (Jsonb(decision["new_weights"]), client)).fetchone()
    assert used is not None and used[0] == used[1] == result[0]["rescored"]
    after = who(conn, client)
    assert after["weights_in_force"] == decision["new_weights"]
    nxt = after["weight_learning"]
    assert nxt["old_weights"] == pytest.approx(decision["new_weights"])
    assert max(abs(nxt["new_weights"][k] - nxt["old_weights"][k]) for k in KEYS) <= 0.05 + 1e-4


def test_detect_writes_nothing(conn: Conn, world: World) -> None:
    def state() -> tuple[Any, ...]:
        row = conn.execute(
            "select (select count(*) from public.conversion_patterns where client_id = %(c)s),"
            " (select count(*) from public.conversion_pattern_history where client_id = %(c)s),"
            " (select to_jsonb(c) from public.clients as c where c.id = %(c)s),"
            " (select max(scored_at) from public.leads where client_id = %(c)s),"
            " (select sum(xmin::text::bigint) from public.leads where client_id = %(c)s)",
            {"c": world.planted}).fetchone()
        assert row is not None
        return tuple(row)

    first = state()
    who(conn, world.planted)
    assert state() == first


def test_parallel_pass_counts_what_one_process_counts(conn: Conn, world: World) -> None:
    """WHO's pass over the leads runs in parallel workers on a large client; here
    the planner is made to choose them on a small one (parallel costs zeroed),
    and the counts must equal those of the same statement in one process."""
    query = "select * from ci_private.who_lead_counts(%s)"
    plans: list[str] = []

    def keep_plan(diag: psycopg.errors.Diagnostic) -> None:
        if diag.message_primary and "plan:" in diag.message_primary:
            plans.append(diag.message_primary)

    conn.execute("set max_parallel_workers_per_gather = 0")
    serial = sorted(map(repr, conn.execute(query, (world.planted,)).fetchall()))
    conn.add_notice_handler(keep_plan)
    try:
        for setting in ("max_parallel_workers_per_gather = 2", "parallel_setup_cost = 0",
                        "parallel_tuple_cost = 0", "min_parallel_table_scan_size = 0",
                        "min_parallel_index_scan_size = 0", "auto_explain.log_min_duration = 0",
                        "auto_explain.log_nested_statements = on", "auto_explain.log_analyze = on",
                        "auto_explain.log_level = notice", "client_min_messages = notice"):
            conn.execute(f"set {setting}")
        conn.execute("load 'auto_explain'")
        parallel = sorted(map(repr, conn.execute(query, (world.planted,)).fetchall()))
    finally:
        conn.remove_notice_handler(keep_plan)
        conn.execute("reset all")
    launched = [p for p in plans if "Workers Launched: " in p and "Workers Launched: 0" not in p]
    assert launched, "the counting statement did not run in parallel workers"
    assert parallel == serial
    assert len(serial) > 100
