"""The agents' context says only what the statistics support (pure Python, no database)."""
from __future__ import annotations

from typing import Any

from ci_sidecar.context import build_context


def _patterns() -> dict[str, Any]:
    return {
        "who": {
            "sample_size": 400, "confidence": 0.9, "stale": False,
            "title_rankings": [
                {"title": "vp marketing", "conversion_rate": 0.3, "conversions": 30, "sample": 100,
                 "ci_low": 0.2, "ci_high": 0.4, "significance": "above"},
                {"title": "owner", "conversion_rate": 0.6, "conversions": 3, "sample": 5, "significance": "none"},
            ],
        },
        "what": {
            "sample_size": 400, "confidence": 0.3, "stale": True, "computed_at": "2026-01-01",
            "subject_patterns": {"winning": [{"pattern": "Question about {company}", "conversion_rate": 0.05,
                                              "conversions": 40, "sample": 800}], "losing": []},
            "ctas": {"effective": []},
        },
        "when": None,
        "how": {"insufficient_data": True, "sample_size": 12},
    }


def test_only_significant_segments_become_advice() -> None:
    ctx = build_context(_patterns())
    assert any("vp marketing" in line for line in ctx.targeting)
    assert not any("owner" in line for line in ctx.targeting)
    assert any("Question about {company}" in line and "40 of 800" in line for line in ctx.messaging)


def test_caveats_for_stale_low_confidence_missing_and_insufficient() -> None:
    caveats = " ".join(build_context(_patterns()).caveats)
    assert "WHAT pattern is stale" in caveats
    assert "WHAT confidence is low" in caveats
    assert "No WHEN pattern" in caveats
    assert "HOW: not enough outcomes yet (12)" in caveats
    assert build_context(_patterns()).sequencing == []


def test_no_patterns_at_all_says_so() -> None:
    assert "No conversion patterns yet" in build_context({}).as_text()


def test_junk_shapes_do_not_break_it() -> None:
    junk: dict[str, Any] = {"who": {"sample_size": 50, "title_rankings": "junk"},
                            "what": {"sample_size": 50, "subject_patterns": [1, 2]}, "when": {"best_days": [None, 3]},
                            "how": {"winning_sequences": [{"sequence": "email"}]}}
    text = build_context(junk).as_text()
    assert isinstance(text, str)
