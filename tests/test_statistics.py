"""The hand-written statistics, tested directly against scipy / statsmodels / a plain reference
(issue 14): the normal quantile, the exact Poisson interval, the Wilson interval and the Beta
prior of ci_private.rate_table, the position-adjusted table, Kaplan-Meier on exact times, and the
AUC of the score-quality view (measured without the outcome's own risk points)."""
from __future__ import annotations

import math
import uuid
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg.types.json import Jsonb
from scipy import stats

pytestmark = pytest.mark.db

Conn = psycopg.Connection[Any]


def _one(conn: Conn, sql: str, params: Any = None) -> Any:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def test_normal_quantile_matches_scipy(conn: Conn) -> None:
    ps = np.concatenate([np.logspace(-12, -1, 40), np.linspace(0.02, 0.98, 49), 1 - np.logspace(-12, -1, 40)])
    got = conn.execute("select ci_private.normal_quantile(p) from unnest(%s::float8[]) as p", (list(ps),)).fetchall()
    for p, (q,) in zip(ps, got):
        assert q == pytest.approx(stats.norm.ppf(p), rel=2e-9, abs=2e-9), p


@pytest.mark.parametrize("alpha", [0.05, 0.05 / 24, 1e-4])
def test_poisson_interval_matches_the_exact_chi_square_bounds(conn: Conn, alpha: float) -> None:
    counts = list(range(121)) + [150, 300, 1000, 5000]
    got = conn.execute(
        "select k, ci_private.poisson_interval(k, %s) from unnest(%s::bigint[]) as k", (alpha, counts)
    ).fetchall()
    for k, (low, high) in got:
        ref_low = 0.0 if k == 0 else stats.chi2.ppf(alpha / 2, 2 * k) / 2
        ref_high = stats.chi2.ppf(1 - alpha / 2, 2 * k + 2) / 2
        tol = 1e-8 if k <= 100 else 2e-3  # exact up to 100 events, Byar's approximation above
        assert low == pytest.approx(ref_low, rel=tol, abs=1e-12), (k, alpha)
        assert high == pytest.approx(ref_high, rel=tol), (k, alpha)


def test_wilson_interval_and_beta_prior_match_references(conn: Conn) -> None:
    from statsmodels.stats.proportion import proportion_confint

    rng = np.random.default_rng(4)
    sizes = rng.integers(30, 900, 9)
    segs = [{"k": i, "conversions": int(rng.binomial(n, 0.1 + 0.02 * (i % 3))), "sample": int(n)}
            for i, n in enumerate(sizes)]
    baseline = sum(s["conversions"] for s in segs) / sum(s["sample"] for s in segs)
    ranked = _one(conn, "select ci_private.rate_table(%s::jsonb, %s, 30)", (Jsonb(segs), baseline))
    m = len(segs)
    # Plain reference of the Beta prior: method of moments on the excess between-segment variance.
    n = np.array([s["sample"] for s in segs], dtype=float)
    c = np.array([s["conversions"] for s in segs], dtype=float)
    var_obs = float(np.sum(n * (c / n - baseline) ** 2) / np.sum(n))
    var_noise = m * baseline * (1 - baseline) / float(np.sum(n))
    kappa = min(max(baseline * (1 - baseline) / max(var_obs - var_noise, 1e-9) - 1, 10), 1e4)
    for row in ranked:
        low, high = proportion_confint(row["conversions"], row["sample"], alpha=0.05 / m, method="wilson")
        assert row["ci_low"] == pytest.approx(low, abs=6e-5) and row["ci_high"] == pytest.approx(high, abs=6e-5)
        assert row["prior_strength"] == pytest.approx(kappa, abs=0.051)
        smoothed = (row["conversions"] + baseline * kappa) / (row["sample"] + kappa)
        assert row["smoothed_rate"] == pytest.approx(smoothed, abs=6e-5)


def test_adjusted_table_matches_scipy(conn: Conn) -> None:
    segs: list[dict[str, Any]] = [
            {"k": "a", "conversions": 30, "sample": 400, "expected": 15.5},
            {"k": "b", "conversions": 8, "sample": 300, "expected": 12.25},
            {"k": "c", "conversions": 140, "sample": 2000, "expected": 150.0},
            {"k": "d", "conversions": 0, "sample": 60, "expected": 2.0}]
    ranked = {r["k"]: r for r in _one(conn, "select ci_private.adjusted_rate_table(%s::jsonb, 0.05, 30)",
                                      (Jsonb(segs),))}
    alpha = 0.05 / len(segs)
    for s in segs:
        row, o, e = ranked[s["k"]], s["conversions"], s["expected"]
        low = 0.0 if o == 0 else stats.chi2.ppf(alpha / 2, 2 * o) / 2 / e
        high = stats.chi2.ppf(1 - alpha / 2, 2 * o + 2) / 2 / e
        assert row["adjusted_lift"] == pytest.approx(o / e, abs=0.006)
        assert row["adjusted_lift_ci"][0] == pytest.approx(low, abs=6e-4)
        assert row["adjusted_lift_ci"][1] == pytest.approx(high, abs=6e-4)
        assert row["significance"] == ("above" if low > 1 and o >= 5 else "below" if high < 1 and e >= 5 else "none")
    assert ranked["a"]["significance"] == "above" and ranked["a"]["lift"] == 1.5, "raw lift stays raw"


def _km_client(conn: Conn, name: str) -> uuid.UUID:
    client: uuid.UUID = _one(conn, "insert into public.clients (name, timezone) values (%s, 'UTC') returning id", (name,))
    return client


def _add_leads(conn: Conn, client: uuid.UUID, rows: list[tuple[str, float, float | None]]) -> None:
    """rows: (status, days since the first touch, booking days after the first touch or None)."""
    for status, first_days_ago, booked_after in rows:
        lead = _one(conn, "insert into public.leads (client_id, status, timezone) values (%s, 'in_sequence', 'UTC')"
                    " returning id", (client,))
        first = _one(conn, "insert into public.activities (client_id, lead_id, channel, action, created_at)"
                     " values (%s, %s, 'email', 'sent', now() - %s * interval '1 day') returning created_at",
                     (client, lead, first_days_ago))
        if status == "converted":
            conn.execute("update public.leads set status = 'converted', converted_at = %s + %s * interval '1 day'"
                         " where id = %s", (first, booked_after, lead))
        elif status != "in_sequence":
            conn.execute("update public.leads set status = %s::public.lead_status where id = %s", (status, lead))


def test_kaplan_meier_on_exact_times_the_issue_case(conn: Conn) -> None:
    """15 failed leads (at risk for ever), 5 open leads censored at 1.2 days, 6 bookings at 1.5 days.
    Floored to whole days the open leads stayed at risk for the bookings: 6 / 26 = 0.2308. On exact
    times they left the risk set before: 6 / 21 = 0.2857."""
    client = _km_client(conn, "issue 14 km exact")
    _add_leads(conn, client, [("dead", 30.0, None)] * 15 + [("in_sequence", 1.2, None)] * 5
               + [("converted", 30.0, 1.5)] * 6)
    km = _one(conn, "select public.detect_when_patterns(%s)", (client,))
    assert km["insufficient_data"] is True  # 6 bookings: the pattern withholds its keys; the statistic itself:
    with conn.transaction():
        conn.execute("select ci_private.prepare_touches(%s)", (client,))
        stats_ = _one(conn, "select ci_private.when_patterns()")
    assert stats_["kaplan_meier"]["booked_by_day"]["day_7"] == pytest.approx(6 / 21, abs=1e-4)
    assert stats_["kaplan_meier"]["booked_by_day"]["day_7"] == 0.2857


def test_kaplan_meier_matches_statsmodels(conn: Conn) -> None:
    """Random exact times with ties between bookings and censorings (events first), failed leads
    kept at risk (censored at infinity): the curve equals statsmodels' product-limit estimate."""
    from statsmodels.duration.survfunc import SurvfuncRight

    rng = np.random.default_rng(14)
    rows: list[tuple[str, float, float | None]] = []
    times, events = [], []
    for _ in range(40):
        t = float(rng.choice([0.5, 1.25, 2.0, 3.5, 6.0, 9.0, 12.5, 20.0, 45.0]))
        rows.append(("converted", 100.0, t))
        times.append(t)
        events.append(1)
    for _ in range(30):
        t = float(rng.uniform(0.2, 40))
        rows.append(("in_sequence", t, None))
        times.append(t)
        events.append(0)
    for _ in range(50):
        rows.append(("not_interested", 100.0, None))
        times.append(1e6)
        events.append(0)
    client = _km_client(conn, "issue 14 km statsmodels")
    _add_leads(conn, client, rows)
    km = _one(conn, "select public.detect_when_patterns(%s)", (client,))["kaplan_meier"]
    sf = SurvfuncRight(np.array(times), np.array(events))
    for day in (7, 14, 30, 60, 90):
        idx = np.searchsorted(sf.surv_times, day, side="right") - 1
        surv = 1.0 if idx < 0 else float(sf.surv_prob[idx])
        assert km["booked_by_day"][f"day_{day}"] == pytest.approx(1 - surv, abs=6e-5), day


def test_score_quality_auc_matches_scipy_and_leaves_out_outcome_risk(conn: Conn) -> None:
    """30 booked and 30 bounced leads with the same mix of titles and contact data: the stored score
    deducts 10 risk points for the bounce (the outcome itself) and ranks bookers first; measured
    without that leak the score cannot tell them apart (AUC 0.5)."""
    client = _one(conn, "insert into public.clients (name) values ('issue 14 score quality') returning id")
    conn.execute(
        """
        insert into public.leads (client_id, title, email, email_verified, status, bounce_count)
        select %(c)s, case when i %% 3 = 0 then 'CEO' when i %% 3 = 1 then 'Marketing Coordinator' else 'Engineer' end,
               'x' || i || '@example.com', i %% 2 = 0,
               case when i <= 30 then 'converted' else 'bounced' end::public.lead_status,
               case when i <= 30 then 0 else 1 end
        from generate_series(1, 60) as i
        """,
        {"c": client},
    )
    view = conn.execute(
        "select auc, stored_score_auc, top20_lift, stored_score_top20_lift, score_basis"
        " from public.conversion_score_discrimination where client_id = %s", (client,),
    ).fetchone()
    assert view is not None
    auc, stored_auc, lift, stored_lift, basis = view
    assert float(stored_auc) > 0.7 and float(stored_lift) > 1.3, "the leak: bookers ranked first"
    assert "without outcome-derived risk" in basis
    # The AUC against scipy's Mann-Whitney U, on the same per-lead scores (ties count one half).
    scores = conn.execute(
        """
        select ci_private.lead_outcome(l.status::text),
               ci_private.als_score(l.als_data_quality, l.als_authority, l.als_company_fit, l.als_timing,
                 ci_private.als_junior_points(' ' || coalesce(ci_private.normalize_title(l.title), '') || ' '),
                 ci_private.als_weight_units(l.als_weights_used))
        from public.leads as l where l.client_id = %s
        """, (client,),
    ).fetchall()
    pos = [s for o, s in scores if o == 1]
    neg = [s for o, s in scores if o == 0]
    u = stats.mannwhitneyu(pos, neg).statistic
    assert float(auc) == pytest.approx(u / (len(pos) * len(neg)), abs=6e-5)
    assert float(auc) == 0.5 and math.isfinite(float(lift))
