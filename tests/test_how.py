"""The HOW detector: the planted first channel wins, null data names nothing, and
survivorship does not crown the sequences and channel counts of leads that booked early."""
from __future__ import annotations

from typing import Any

import psycopg
import pytest

from ci_sidecar.generator import PLANTED
from tests.test_touches import client_for, null_specs, patterns_for, planted_spec

pytestmark = pytest.mark.db

Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def how(dsn: str) -> dict[str, Any]:
    return patterns_for(dsn, client_for(dsn, planted_spec())).how


def test_planted_first_channel_wins(how: dict[str, Any]) -> None:
    first = PLANTED["first_channel"]["value"]
    assert how["first_touch_rankings"][0]["channel"] == first
    assert how["best_first_channels"][0]["channel"] == first
    effectiveness = how["first_touch_effectiveness"]
    assert max(effectiveness, key=lambda k: effectiveness[k]["smoothed_rate"]) == f"{first}_first"
    assert how["sequence_rankings"][0]["sequence"][0] == first


def test_seed_shapes(how: dict[str, Any]) -> None:
    shares = how["booking_channel_distribution"]
    assert set(shares) <= {"email", "linkedin", "sms", "voice"} and abs(sum(shares.values()) - 1) < 1e-3
    assert set(how["multi_channel_lift"]) <= {"1_channel", "2_channels", "3_channels", "4_plus_channels"}
    assert how["multi_channel_lift"]["1_channel"]["lift"] == 1
    for path in how["sequence_rankings"]:
        assert len(path["sequence"]) == 6 and 0 <= path["booking_probability"] <= 1
        assert path["sample_size"] >= 20
    tiers = how["channel_effectiveness_by_tier"]
    assert tiers and all("smoothed_rate" in ch for chans in tiers.values() for ch in chans.values())
    assert how["multi_channel_lift_by_tier"]


def test_no_effect_names_almost_nothing(dsn: str) -> None:
    named = []
    for spec in null_specs():
        how = patterns_for(dsn, client_for(dsn, spec)).how
        named.append(len(how["best_first_channels"]) + len(how["winning_sequences"]) + len(how["losing_sequences"])
                     + sum(v["significance"] != "none" for v in how["multi_channel_lift"].values()))
    assert sum(named) <= 2, f"winners/losers named on null data: {named}"


def test_survivorship_does_not_crown_early_bookers(conn: Conn) -> None:
    """Every lead is sent email, LinkedIn, SMS, voice in turn and books at each touch with the same
    20% chance. Grouping leads by the channels they happened to receive makes one channel look
    perfect (only early bookers stop at one); per touch exposed, channel counts are alike."""
    client = conn.execute(
        "insert into public.clients (name, timezone) values ('issue 4 survivorship', 'UTC') returning id"
    ).fetchone()
    assert client is not None
    # 1000 leads: 200 book at touch 1, 160 at 2, 128 at 3, 102 at 4, 410 fail after 4.
    booked_at = [1] * 200 + [2] * 160 + [3] * 128 + [4] * 102 + [0] * 410
    conn.execute(
        """
        with l as (
          insert into public.leads (client_id, first_name, status, timezone)
          select %(client)s, 'lead ' || i, 'in_sequence', 'UTC'
          from generate_series(1, %(n)s) as i
          returning id, substring(first_name from 6)::int as i
        ),
        plan as (
          select l.id, l.i, (%(booked)s::int[])[l.i] as booked_at from l
        ),
        acts as (
          insert into public.activities (client_id, lead_id, channel, action, created_at)
          select %(client)s, p.id, (array['email', 'linkedin', 'sms', 'voice'])[k]::public.channel_type,
                 case when k = 4 then 'voice_completed' else 'sent' end,
                 timestamptz '2026-05-04 10:00+00' + (p.i %% 50) * interval '1 day' + (k - 1) * interval '2 days'
          from plan as p cross join generate_series(1, 4) as k
          where p.booked_at = 0 or k <= p.booked_at
          returning 1
        )
        select count(*) from acts
        """,
        {"client": client[0], "n": len(booked_at), "booked": booked_at},
    )
    conn.execute(
        """
        update public.leads as l
        set status = case when b.booked_at = 0 then 'dead' else 'converted' end::public.lead_status,
            converted_at = case when b.booked_at > 0 then timestamptz '2026-05-04 12:00+00'
              + (b.i %% 50) * interval '1 day' + (b.booked_at - 1) * interval '2 days' end
        from (select l2.id, substring(l2.first_name from 6)::int as i from public.leads as l2
              where l2.client_id = %(client)s) as x
        cross join lateral (select (%(booked)s::int[])[x.i] as booked_at, x.i) as b
        where l.id = x.id
        """,
        {"client": client[0], "booked": booked_at},
    )
    how = conn.execute("select public.detect_how_patterns(%s)", (client[0],)).fetchone()
    assert how is not None
    lift = how[0]["multi_channel_lift"]
    # Naive, by lead: leads that received one channel all booked (200/200); four channels 102/512.
    naive_one, naive_four = 200 / 200, 102 / 512
    assert naive_one / naive_four > 4
    # Per touch exposed: every count books at about 20% per touch, no winner, no loser.
    for key in ("1_channel", "2_channels", "3_channels", "4_plus_channels"):
        assert abs(lift[key]["conversion_rate"] - 0.2) < 0.01, lift[key]
        assert lift[key]["significance"] == "none"
        assert 0.9 < lift[key]["position_adjusted_lift"] < 1.1
    assert how[0]["winning_sequences"] == [] and how[0]["losing_sequences"] == []
    path = how[0]["sequence_rankings"]
    assert path == [] or abs(path[0]["booking_probability"] - 590 / 1000) < 0.01
