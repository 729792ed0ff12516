"""Stored patterns turned into context for the campaign-writing agents.

Only what the statistics support is said as advice: the lists of winners and losers hold
segments whose interval excludes the client's rate, so they are quoted as they are;
rankings are mentioned only with their sample. Stale or low-confidence patterns are
flagged, and a pattern that is missing says so instead of inventing defaults.
"""
from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AgentContext", "build_context", "fetch_patterns", "main"]

LOW_CONFIDENCE = 0.5


@dataclass(frozen=True)
class AgentContext:
    """Context lines per audience, plus the caveats that apply to all of them."""

    messaging: list[str] = field(default_factory=list)
    sequencing: list[str] = field(default_factory=list)
    targeting: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)

    def as_text(self) -> str:
        parts: list[str] = []
        for title, lines in (("Targeting (WHO)", self.targeting), ("Messaging (WHAT)", self.messaging),
                             ("Sequencing (WHEN/HOW)", self.sequencing), ("Caveats", self.caveats)):
            if lines:
                parts.append(title + ":\n" + "\n".join(f"- {line}" for line in lines))
        return "\n\n".join(parts) if parts else "No conversion patterns yet: write from the brief alone."


def _pct(value: Any) -> str:
    try:
        return f"{float(value) * 100:.1f}%"
    except (TypeError, ValueError):
        return "n/a"


def _evidence(item: Mapping[str, Any]) -> str:
    conv, sample = item.get("conversions"), item.get("sample", item.get("sample_size"))
    lo, hi = item.get("ci_low"), item.get("ci_high")
    text = f"{_pct(item.get('conversion_rate'))}"
    if conv is not None and sample is not None:
        text += f", {conv} of {sample}"
    elif sample is not None:
        text += f", n={sample}"
    if lo is not None and hi is not None:
        text += f", interval {_pct(lo)}-{_pct(hi)}"
    return text


def _items(node: Any) -> list[Mapping[str, Any]]:
    return [x for x in node if isinstance(x, Mapping)] if isinstance(node, list) else []


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _caveats(name: str, pattern: Mapping[str, Any] | None, out: list[str]) -> bool:
    """Adds caveats for one pattern; False when it is absent or says insufficient data."""
    if not pattern:
        out.append(f"No {name.upper()} pattern has been computed for this client.")
        return False
    if pattern.get("insufficient_data") or pattern.get("status") == "insufficient_data":
        out.append(f"{name.upper()}: not enough outcomes yet ({pattern.get('sample_size', 0)}).")
        return False
    if pattern.get("stale"):
        out.append(f"{name.upper()} pattern is stale (computed {pattern.get('computed_at')}).")
    confidence = pattern.get("confidence")
    if isinstance(confidence, int | float) and confidence < LOW_CONFIDENCE:
        out.append(f"{name.upper()} confidence is low ({confidence:.2f}): treat it as a hint.")
    return True


def build_context(patterns: Mapping[str, Any]) -> AgentContext:
    """Context from get_conversion_patterns' JSON ({who, what, when, how})."""
    ctx = AgentContext()
    who, what, when, how = (patterns.get(k) for k in ("who", "what", "when", "how"))
    if not any((who, what, when, how)):
        return ctx

    if _caveats("who", who, ctx.caveats):
        for key, label in (("title_rankings", "title"), ("industry_rankings", "industry")):
            for item in _items(_get(who, key)):
                if item.get("significance") == "above":
                    ctx.targeting.append(f"{label.title()} '{item.get(label)}' books above average ({_evidence(item)}).")
        sweet = _get(who, "size_analysis", "sweet_spot")
        if isinstance(sweet, Mapping) and sweet.get("significance", "above") == "above" and sweet.get("min") is not None:
            ctx.targeting.append(f"Company size sweet spot: {sweet.get('min')}-{sweet.get('max')} employees.")

    if _caveats("what", what, ctx.caveats):
        for item in _items(_get(what, "subject_patterns", "winning"))[:3]:
            ctx.messaging.append(f"Subject that works: \"{item.get('pattern')}\" ({_evidence(item)}).")
        for item in _items(_get(what, "subject_patterns", "losing"))[:3]:
            ctx.messaging.append(f"Avoid subject \"{item.get('pattern')}\" ({_evidence(item)}).")
        for item in _items(_get(what, "pain_points", "effective"))[:3]:
            ctx.messaging.append(f"Lead with pain point '{item.get('pain_point')}' (lift {item.get('lift')}).")
        for item in _items(_get(what, "pain_points", "ineffective"))[:3]:
            ctx.messaging.append(f"Avoid pain point '{item.get('pain_point')}' (lift {item.get('lift')}).")
        for item in _items(_get(what, "ctas", "effective"))[:3]:
            ctx.messaging.append(f"CTA that books: \"{item.get('cta')}\" ({_evidence(item)}).")
        email_len = _get(what, "optimal_length", "email")
        if isinstance(email_len, Mapping) and email_len.get("optimal_words"):
            ctx.messaging.append(
                f"Email length: about {email_len.get('optimal_words')} words "
                f"({email_len.get('range_min')}-{email_len.get('range_max')})."
            )

    if _caveats("when", when, ctx.caveats):
        for key, label in (("best_days", "day"), ("best_hours", "hour")):
            for item in _items(_get(when, key)):
                if item.get("significance") == "above":
                    unit = f"{item.get(label)}:00 local time" if label == "hour" else str(item.get(label))
                    ctx.sequencing.append(f"Send on/at {unit} ({_evidence(item)}).")
        gaps = _get(when, "optimal_sequence_gaps")
        if isinstance(gaps, Mapping) and gaps:
            ctx.sequencing.append("Gaps between touches (days): " + json.dumps(dict(gaps), sort_keys=True))

    if _caveats("how", how, ctx.caveats):
        for item in _items(_get(how, "winning_sequences"))[:3]:
            seq = item.get("sequence")
            if isinstance(seq, list) and item.get("significance", "above") == "above":
                ctx.sequencing.append(f"Sequence that books: {' -> '.join(map(str, seq))} ({_evidence(item)}).")
    return ctx


def fetch_patterns(dsn: str, client_id: str) -> dict[str, Any]:
    """get_conversion_patterns for one client, as the database owner or the given role."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute("select public.get_conversion_patterns(%s)", (client_id,)).fetchone()
    return dict(row[0]) if row and row[0] else {}


def main(argv: Sequence[str] | None = None) -> int:
    """ci-context: print the agents' context for one client."""
    parser = argparse.ArgumentParser(description="Print the campaign agents' context for a client.")
    parser.add_argument("client_id")
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error("--dsn or DATABASE_URL is required")
    print(build_context(fetch_patterns(args.dsn, args.client_id)).as_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
