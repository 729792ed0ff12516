"""The WHAT detector on generated history: planted content wins, null data names nothing."""
from __future__ import annotations

from typing import Any

import pytest

from ci_sidecar.generator import PLANTED
from tests.test_touches import client_for, null_specs, patterns_for, planted_spec

pytestmark = pytest.mark.db

LISTS = [
    ("subject_patterns", "winning"), ("subject_patterns", "losing"), ("pain_points", "effective"),
    ("pain_points", "ineffective"), ("ctas", "effective"), ("ctas", "ineffective"), ("angles", "effective"),
    ("angles", "ineffective"),
]


@pytest.fixture(scope="module")
def what(dsn: str) -> dict[str, Any]:
    return patterns_for(dsn, client_for(dsn, planted_spec())).what


def test_planted_subject_template_wins(what: dict[str, Any]) -> None:
    subjects = what["subject_patterns"]
    assert subjects["rankings"][0]["pattern"] == PLANTED["subject"]["value"]
    assert subjects["winning"][0]["pattern"] == PLANTED["subject"]["value"]
    top = subjects["rankings"][0]
    assert top["significance"] == "above" and top["lift"] > 1.3


def test_planted_pain_point_wins(what: dict[str, Any]) -> None:
    pains = what["pain_points"]
    assert pains["rankings"][0]["pain_point"] == PLANTED["pain_point"]["value"]
    assert pains["effective"][0]["pain_point"] == PLANTED["pain_point"]["value"]
    assert 0 < pains["effective"][0]["frequency"] <= 1 and pains["effective"][0]["lift"] > 1


def test_planted_cta_ranks_first(what: dict[str, Any]) -> None:
    assert what["ctas"]["rankings"][0]["cta"] == PLANTED["cta"]["value"]


def test_planted_email_length_is_the_optimum(what: dict[str, Any]) -> None:
    email = what["optimal_length"]["email"]
    lo, hi = PLANTED["email_length"]["min_words"], PLANTED["email_length"]["max_words"]
    assert lo <= email["range_min"] and email["range_max"] <= hi
    assert lo <= email["optimal_words"] <= hi
    assert {"optimal_words", "range_min", "range_max"} <= set(what["optimal_length"]["linkedin"])
    assert "optimal_chars" in what["optimal_length"]["sms"]


def test_rankings_carry_the_shared_statistics(what: dict[str, Any]) -> None:
    for row in what["ctas"]["rankings"]:
        assert {"conversions", "sample", "conversion_rate", "smoothed_rate", "ci_low", "ci_high", "lift",
                "significance"} <= set(row)
        assert row["ci_low"] <= row["conversion_rate"] <= row["ci_high"]
    # Ranked by the position-adjusted figure (issue 14), not the raw smoothed rate.
    lifts = [r["smoothed_adjusted_lift"] for r in what["angles"]["rankings"]]
    assert lifts == sorted(lifts, reverse=True)
    for row in what["angles"]["rankings"]:
        low, high = row["adjusted_lift_ci"]
        assert low <= row["adjusted_lift"] <= high and row["expected_bookings"] > 0
    assert what["personalization_lift"]["recent_news"] > 1.2


def test_derived_snapshots_take_part(what: dict[str, Any]) -> None:
    meta = what["metadata"]
    assert meta["derived_snapshot_trials"] > 0.1 * meta["content_trials"]
    assert meta["skipped"]["junk_snapshot"] > 0


def test_no_effect_names_almost_nothing(dsn: str) -> None:
    named = []
    for spec in null_specs():
        what = patterns_for(dsn, client_for(dsn, spec)).what
        assert not what["insufficient_data"]
        assert len(what["subject_patterns"]["rankings"]) >= 5, "rankings keep every segment"
        named.append(sum(len(what[key][part]) for key, part in LISTS))
    assert sum(named) <= 2, f"winners/losers named on null data: {named}"
