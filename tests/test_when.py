"""The WHEN detector on generated history: local day, local hour and touch position win;
UTC would not find the hour; null data names nothing; time to booking is censoring-aware."""
from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from ci_sidecar.generator import PLANTED
from tests.test_touches import client_for, null_specs, patterns_for, planted_spec

pytestmark = pytest.mark.db

Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def client(dsn: str) -> uuid.UUID:
    return client_for(dsn, planted_spec())


@pytest.fixture(scope="module")
def when(dsn: str, client: uuid.UUID) -> dict[str, Any]:
    return patterns_for(dsn, client).when


def test_planted_local_day_wins(when: dict[str, Any]) -> None:
    assert when["day_rankings"][0]["day"] == PLANTED["day"]["value"]
    assert when["best_days"][0]["day_index"] == PLANTED["day"]["dow"]


def test_planted_local_hour_wins(when: dict[str, Any]) -> None:
    assert when["hour_rankings"][0]["hour"] == PLANTED["hour"]["value"]
    assert when["best_hours"][0]["hour"] == PLANTED["hour"]["value"]


def test_utc_would_not_find_the_planted_hour(conn: Conn, client: uuid.UUID, when: dict[str, Any]) -> None:
    """The same trials, hours read in UTC instead of local time: the planted hour is lost."""
    with conn.transaction():
        conn.execute("select ci_private.prepare_touches(%s)", (client,))
        rows = conn.execute(
            """
            select date_part('hour', t.created_at at time zone 'UTC')::int, count(*), sum(t.booked)
            from pg_temp.ci_touches as t where t.booked is not null group by 1
            """
        ).fetchall()
    min_sample = when["metadata"]["min_sample"]
    rates = {hour: c / n for hour, n, c in rows if n >= min_sample}
    utc_best = max(rates, key=lambda h: rates[h])
    assert utc_best != PLANTED["hour"]["value"], "read in UTC, the planted hour is not the best"
    local_lift = when["hour_rankings"][0]["lift"]
    utc_lift = rates[PLANTED["hour"]["value"]] / when["metadata"]["baseline_rate"]
    assert utc_lift < local_lift - 0.3, "and its lift is washed out by the spread of zones"


def test_planted_touch_position_wins_by_hazard(when: dict[str, Any]) -> None:
    hazard = when["touch_position_hazard"]
    assert hazard[0]["position"] == PLANTED["position"]["value"]
    assert when["winning_positions"][0]["position"] == PLANTED["position"]["value"]
    shares = when["converting_touch_distribution"]
    assert abs(sum(shares.values()) - 1) < 1e-3
    assert max(shares, key=lambda k: shares[k]) == f"touch_{PLANTED['position']['value']}"


def test_gaps_and_timing(when: dict[str, Any]) -> None:
    gaps = when["optimal_sequence_gaps"]
    assert set(gaps) == {f"touch_{k}_to_{k + 1}" for k in range(1, 6)}
    assert all(0 < v < 30 for v in gaps.values())
    timing = when["conversion_timing"]
    assert 0 < timing["percentile_50"] <= timing["percentile_80"] <= timing["percentile_95"]
    assert timing["median_days_to_convert"] == timing["percentile_50"]


def test_kaplan_meier_counts_open_leads_as_censored(when: dict[str, Any]) -> None:
    km = when["kaplan_meier"]
    curve = [km["booked_by_day"][f"day_{d}"] for d in (7, 14, 30, 60, 90)]
    assert curve == sorted(curve) and 0 < curve[0] and curve[-1] < 1
    leads = when["metadata"]["leads"]
    assert km["events"] == leads["converted"] and km["censored_open"] == leads["open"]
    naive = leads["converted"] / (leads["converted"] + leads["failed"] + leads["open"])
    assert curve[-1] >= naive - 1e-4, "open leads may still book: not counted as failures"


def test_kaplan_meier_by_hand(conn: Conn) -> None:
    """10 leads booked on days 1..10 after their first touch, 20 failed, 30 still open after 3 days:
    the open leads leave the risk set after day 3, the failed ones never do. (Bookings are set at
    exactly i days after the first touch: Kaplan-Meier reads exact times, so a booking a few
    milliseconds after day 7 would fall after the day-7 horizon.)"""
    client = conn.execute(
        "insert into public.clients (name, timezone) values ('issue 4 km', 'UTC') returning id"
    ).fetchone()
    assert client is not None
    conn.execute(
        """
        with l as (
          insert into public.leads (client_id, first_name, status, timezone)
          select %(c)s, 'lead ' || i, 'in_sequence', 'UTC' from generate_series(1, 60) as i
          returning id, substring(first_name from 6)::int as i
        )
        insert into public.activities (client_id, lead_id, channel, action, created_at)
        select %(c)s, l.id, 'email', 'sent',
               case when l.i <= 30 then now() - interval '60 days' else now() - interval '3 days' end
        from l
        """,
        {"c": client[0]},
    )
    conn.execute(
        """
        update public.leads as l
        set status = case when x.i <= 10 then 'converted' else 'dead' end::public.lead_status,
            converted_at = case when x.i <= 10 then x.first_touch + x.i * interval '1 day' end
        from (select l2.id, substring(l2.first_name from 6)::int as i, a.created_at as first_touch
              from public.leads as l2 inner join public.activities as a on a.lead_id = l2.id
              where l2.client_id = %(c)s) as x
        where l.id = x.id and x.i <= 30
        """,
        {"c": client[0]},
    )
    row = conn.execute("select public.detect_when_patterns(%s)", (client[0],)).fetchone()
    assert row is not None
    km = row[0]["kaplan_meier"]
    survival = (57 / 60) * (23 / 27)  # days 1-3 with 60, 59, 58 at risk; days 4-7 with 27..24
    assert km["booked_by_day"]["day_7"] == pytest.approx(1 - survival, abs=1e-4)
    assert km["booked_by_day"]["day_7"] > 7 / 60 + 0.05, "well above the naive share of all leads"
    assert km["at_risk"]["day_7"] == 20 + 4, "the failed, and those booking on day 7 or later"
    assert km["censored_open"] == 30 and km["failed_kept_at_risk"] == 20 and km["events"] == 10


def test_no_effect_names_almost_nothing(dsn: str) -> None:
    named = []
    for spec in null_specs():
        when = patterns_for(dsn, client_for(dsn, spec)).when
        named.append(sum(len(when[k]) for k in ("best_days", "worst_days", "best_hours", "worst_hours",
                                                 "winning_positions")))
        assert len(when["hour_rankings"]) >= 8
    assert sum(named) <= 2, f"winners/losers named on null data: {named}"
