"""The agents' context says only what the patterns back (pure Python, fixed pattern JSON).

Cases: empty, partial (some types missing), stale (skipped, or flagged on request),
insufficient data, low confidence, junk shapes, the statistics helper's adjusted figures,
and determinism (the same JSON gives the same text).
"""
from __future__ import annotations

import copy
import json
from typing import Any

from ci_sidecar.context import AgentContext, build_context


def _ranked(label: str, value: object, sig: str, conv: int, n: int, rate: float, **extra: Any) -> dict[str, Any]:
    return {label: value, "conversion_rate": rate, "conversions": conv, "sample": n, "ci_low": rate * 0.7,
            "ci_high": rate * 1.3, "lift": round(rate / 0.1, 2), "significance": sig, **extra}


def _patterns() -> dict[str, Any]:
    return {
        "who": {
            "sample_size": 400, "confidence": 0.9, "stale": False, "computed_at": "2026-11-30T00:00:00+00:00",
            "title_rankings": [
                _ranked("title", "vp marketing", "above", 30, 100, 0.3),
                _ranked("title", "owner", "none", 3, 5, 0.6),
                _ranked("title", "intern", "below", 1, 90, 0.011),
            ],
            # As detect_who_patterns writes it: the sweet spot has no bookings or interval of its own,
            # its band of the distribution has them.
            "size_analysis": {"sweet_spot": {"min": 16, "max": 30, "range": "16-30", "significance": "above",
                                             "conversion_rate": 0.1878, "sample": 623, "lift": 1.78,
                                             "smoothed_rate": 0.1835},
                              "distribution": [
                                  {"min": 6, "max": 15, "range": "6-15", "band": 2, "sample": 463, "conversions": 37,
                                   "conversion_rate": 0.0799, "ci_low": 0.0526, "ci_high": 0.1197, "lift": 0.76,
                                   "significance": "none"},
                                  {"min": 16, "max": 30, "range": "16-30", "band": 3, "sample": 623,
                                   "conversions": 117, "conversion_rate": 0.1878, "ci_low": 0.1501, "ci_high": 0.2324,
                                   "lift": 1.78, "significance": "above"}]},
            "timing_signals": {
                "definitions": {"hiring": "organization_is_hiring",
                                "funded": "latest funding within 12 months before the first outbound touch"},
                "segments": {"hiring": [_ranked("flag", True, "above", 88, 622, 0.141),
                                        _ranked("flag", False, "none", 143, 1562, 0.092)],
                             "funded": [_ranked("flag", True, "above", 42, 271, 0.155)]}},
        },
        "what": {
            "sample_size": 400, "confidence": 0.3, "stale": False, "computed_at": "2026-11-30T00:00:00+00:00",
            "subject_patterns": {"winning": [_ranked("pattern", "Question about {company}", "above", 40, 800, 0.05)],
                                 "losing": [_ranked("pattern", "{company} and {pain_point}", "below", 4, 718, 0.0056)]},
            "pain_points": {"effective": [_ranked("pain_point", "scaling", "above", 51, 1549, 0.033,
                                                  adjusted_lift=1.41, adjusted_lift_ci=[1.05, 1.9])],
                            "ineffective": []},
            "ctas": {"effective": [], "rankings": [_ranked("cta", "worth 15 minutes", "above", 48, 1239, 0.039)]},
            "optimal_length": {"email": {"optimal_words": 87, "range_min": 75, "range_max": 99, "significant": False}},
        },
        "when": None,
        "how": {"insufficient_data": True, "sample_size": 12},
    }


def _all_text(ctx: AgentContext) -> str:
    return "\n".join(ctx.prompts().values())


def test_only_significant_segments_become_advice_each_with_its_evidence() -> None:
    ctx = build_context(_patterns())
    targeting = [s.render() for s in ctx.targeting]
    assert any("vp marketing" in line and "30 of 100 leads" in line for line in targeting)
    assert not any("owner" in line for line in targeting)  # significance none: never advice
    assert any("Deprioritise title 'intern'" in line for line in targeting)
    assert any("16-30 employees" in line for line in targeting)
    messaging = [s.render() for s in ctx.messaging]
    assert any("Question about {company}" in line and "40 of 800 touches" in line for line in messaging)
    assert any("Avoid the subject line" in line for line in messaging)
    # Winners lists may be empty while the rankings hold a significant one: read from the rankings.
    assert any("worth 15 minutes" in line for line in messaging)
    for s in ctx.statements:
        assert s.evidence is not None and s.evidence.n is not None, s


def test_size_sweet_spot_gives_its_bookings_and_interval() -> None:
    line = next(s.render() for s in build_context(_patterns()).targeting if s.topic == "company_size")
    assert line == ("Company size sweet spot: 16-30 employees "
                    "[18.8%, 117 of 623 leads, 95% interval 15.0%-23.2%, lift 1.78x]")
    # A sweet spot with no band of its range in the distribution keeps the figures it has.
    patterns = _patterns()
    patterns["who"]["size_analysis"]["distribution"] = []
    bare = next(s.render() for s in build_context(patterns).targeting if s.topic == "company_size")
    assert bare == "Company size sweet spot: 16-30 employees [18.8%, 623 leads, lift 1.78x]"


def test_signals_are_described_in_words_not_column_names() -> None:
    ctx = build_context(_patterns())
    signals = [s.render() for s in ctx.targeting if s.topic == "timing_signal"]
    assert signals == [
        ("Leads with signal 'funded' (latest funding within 12 months before the first outbound touch) book more "
         "[15.5%, 42 of 271 leads, 95% interval 10.8%-20.2%, lift 1.55x]"),
        ("Leads with signal 'hiring' (company is hiring) book more "
         "[14.1%, 88 of 622 leads, 95% interval 9.9%-18.3%, lift 1.41x]"),
    ]
    # Neither the prompts nor the stored JSON's texts name the column.
    assert "organization_is_hiring" not in _all_text(ctx)
    assert "organization_is_hiring" not in json.dumps(ctx.to_json())


def test_length_not_significant_is_not_advice() -> None:
    assert "87 words" not in _all_text(build_context(_patterns()))


def test_significant_length_carries_its_bands_evidence() -> None:
    patterns = _patterns()
    patterns["what"]["optimal_length"]["email"] = {
        "optimal_words": 62, "range_min": 50, "range_max": 74, "significant": True,
        "distribution": [_ranked("range", "50-74", "above", 35, 959, 0.0365, range_min=50, range_max=74)]}
    line = next(s.render() for s in build_context(patterns).messaging if s.topic == "length")
    assert "about 62 words (50-74)" in line and "35 of 959 touches" in line


def test_adjusted_figures_are_preferred_when_present() -> None:
    line = next(s.render() for s in build_context(_patterns()).messaging if "scaling" in s.text)
    assert "adjusted lift 1.41x (1.05-1.90)" in line
    assert "lift 0.33x" not in line


def test_missing_insufficient_and_low_confidence_are_said() -> None:
    ctx = build_context(_patterns())
    caveats = " ".join(ctx.caveats)
    assert "No WHEN pattern" in caveats
    assert "HOW: not enough outcomes yet (12)" in caveats
    assert "WHAT confidence is low (0.30)" in caveats
    assert ctx.sequencing == []
    assert all("low confidence" in s.flags for s in ctx.messaging)
    assert all(s.flags == () for s in ctx.targeting)
    assert "No WHEN or HOW pattern backs any advice yet" in ctx.sequence_builder().prompt()


def test_stale_pattern_is_skipped_unless_asked_then_flagged() -> None:
    patterns = _patterns()
    patterns["who"]["stale"] = True
    ctx = build_context(patterns)
    assert ctx.targeting == []
    assert any("WHO pattern is stale" in c and "not used" in c for c in ctx.caveats)
    flagged = build_context(patterns, include_stale=True)
    assert flagged.targeting and all("stale" in s.flags for s in flagged.targeting)
    assert "(stale)" in flagged.targeting[0].render()


def test_no_patterns_at_all_says_so() -> None:
    for empty in ({}, {"who": None, "what": None, "when": None, "how": None}, None):
        ctx = build_context(empty)
        assert ctx.statements == []
        assert "No conversion patterns yet" in ctx.as_text()
        assert "write from the brief alone" in ctx.prompts()["messaging"]


def test_partial_patterns_give_only_their_part() -> None:
    only_how = {"how": {"sample_size": 300, "confidence": 0.9, "winning_sequences": [
        {"sequence": ["email", "linkedin"], "booking_probability": 0.2, "sample_size": 120, "conversions": 24,
         "sample": 200, "conversion_rate": 0.12, "significance": "above"}]}}
    ctx = build_context(only_how)
    assert [s.topic for s in ctx.statements] == ["sequence"]
    assert "email -> linkedin" in ctx.sequence_builder().prompt()
    assert ctx.messaging_generator().prompt().startswith("No WHAT pattern backs any advice yet")


def test_same_json_gives_the_same_text() -> None:
    a = build_context(_patterns(), client_name="A")
    b = build_context(copy.deepcopy(_patterns()), client_name="A")
    assert a.prompts() == b.prompts()
    assert json.dumps(a.to_json(), sort_keys=True) == json.dumps(b.to_json(), sort_keys=True)


def test_junk_shapes_do_not_break_it() -> None:
    junk: dict[str, Any] = {"who": {"sample_size": 50, "title_rankings": "junk"},
                            "what": {"sample_size": 50, "subject_patterns": [1, 2], "optimal_length": {"email": 3}},
                            "when": {"best_days": [None, 3], "converting_touch_distribution": {"touch_1": "x"}},
                            "how": {"winning_sequences": [{"sequence": "email", "significance": "above"}]}}
    ctx = build_context(junk)
    assert isinstance(ctx.as_text(), str)
    assert ctx.statements == []
    json.dumps(ctx.to_json())


# As detect_how_patterns writes a winning sequence (Demo client 1): booking_probability is the estimate
# 1 - prod(1 - h_j) from the booking rate of each step, sample_size the leads that reached the last step,
# conversions of sample the bookings among the touches sent along it.
SEQUENCE = {"sequence": ["linkedin", "linkedin", "email", "voice", "email", "email"], "booking_probability": 0.1957,
            "sample_size": 168, "conversions": 46, "sample": 1550, "conversion_rate": 0.0297, "ci_low": 0.0199,
            "ci_high": 0.0441, "lift": 1.59, "significance": "above"}


def test_a_sequence_says_its_booking_share_is_an_estimate_and_what_its_counts_count() -> None:
    ctx = build_context({"how": {"sample_size": 2184, "confidence": 1, "winning_sequences": [SEQUENCE]}})
    [line] = [s.render() for s in ctx.sequence_builder().sequences]
    assert line == ("Sequence that books: linkedin -> linkedin -> email -> voice -> email -> email (an estimated "
                    "19.6% of leads book along it, from the booking rate at each step; 168 leads went down the "
                    "whole sequence) [3.0%, 46 of 1550 touches sent along it booked, 95% interval 2.0%-4.4%, "
                    "lift 1.59x]")
    text = _all_text(ctx) + json.dumps(ctx.to_json())
    assert "sent down it booked" not in text and "touch exposures" not in text


def test_names_are_words_and_the_gap_line_says_what_its_figures_are() -> None:
    """An angle and a signal by their identifiers (roi_focused, new_role) read as words; the sequence gaps
    are medians, each over the booked leads that had both touches, not an average over all 231."""
    patterns = {
        "who": {"sample_size": 2184, "confidence": 1, "timing_signals": {
            "definitions": {"new_role": "in the role under 6 months at the first outbound touch"},
            "segments": {"new_role": [_ranked("flag", True, "above", 43, 238, 0.181)]}}},
        "what": {"sample_size": 2184, "confidence": 1,
                 "angles": {"effective": [_ranked("angle", "roi_focused", "above", 60, 2204, 0.027)]}},
        "when": {"sample_size": 2184, "confidence": 1, "metadata": {"bookings": 231},
                 "optimal_sequence_gaps": {"touch_1_to_2": 3.0, "touch_2_to_3": 2.8, "touch_5_to_6": 1.9}},
    }
    lines = [s.render() for s in build_context(patterns).statements]
    assert "Leads with signal 'new role' (in the role under 6 months at the first outbound touch) book more " \
           "[18.1%, 43 of 238 leads, 95% interval 12.7%-23.5%, lift 1.81x]" in lines
    assert "Angle that books: ROI focused [2.7%, 60 of 2204 touches, 95% interval 1.9%-3.5%, lift 0.27x]" in lines
    assert ("Typical (median) days between touches of booked leads, each gap over those that had both touches "
            "before booking: 1->2: 3.0, 2->3: 2.8, 5->6: 1.9 [231 booked leads in all]") in lines
    text = "\n".join(lines)
    assert "roi_focused" not in text and "new_role" not in text and "n=231" not in text and "Average" not in text

