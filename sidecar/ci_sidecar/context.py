"""Stored patterns turned into context for the campaign-writing agents (spec 5.2-5.4).

Three typed inputs, one per agent, each with its prompt text:

* ``CampaignGenerationInput`` (spec 5.2): targeting, messaging and sequencing in one;
* ``SequenceBuilderInput`` (spec 5.3): winning sequences, gaps, peak touch, best local days/hours;
* ``MessagingGeneratorInput`` (spec 5.4): pain points to use and to avoid, CTAs, subjects,
  angles, lengths per channel.

Nothing is said that a pattern cannot back:

* a segment becomes advice only when its interval clears the client's rate
  (``significance`` above: use it; below: avoid it), and every statement carries its
  evidence (sample n, conversions, rate, interval, lift; the adjusted lift and its
  interval when the pattern has them);
* a pattern that is missing or has too few outcomes says so and gives no advice;
* a stale pattern (past ``valid_until``) is skipped, unless ``include_stale`` asks for
  its statements flagged ``stale``; a low-confidence one (< 0.5) gives statements
  flagged ``low confidence``;
* the output is a function of the patterns alone: same JSON, same text.

Keys are read defensively: a pattern may lack any key, or carry keys added later.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ci_sidecar.wording import SEQUENCE_TOUCHES, plain_name, sequence_estimate, signal_meaning

__all__ = [
    "LOW_CONFIDENCE",
    "AgentContext",
    "CampaignGenerationInput",
    "Evidence",
    "MessagingGeneratorInput",
    "PatternStatus",
    "SequenceBuilderInput",
    "Statement",
    "build_context",
]

LOW_CONFIDENCE = 0.5
TOP = 3


# -- reading JSON defensively ----------------------------------------------------------------------

def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _items(node: Any) -> list[Mapping[str, Any]]:
    return [x for x in node if isinstance(x, Mapping)] if isinstance(node, list) else []


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _count(value: Any) -> int | None:
    number = _num(value)
    return None if number is None else int(number)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


# -- statements and their evidence -----------------------------------------------------------------

@dataclass(frozen=True)
class Evidence:
    """What backs a statement: the sample, the rate and its interval, the lift."""

    unit: str
    n: int | None = None
    conversions: int | None = None
    rate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    lift: float | None = None
    lift_ci: tuple[float, float] | None = None
    adjusted: bool = False

    @classmethod
    def of(cls, item: Mapping[str, Any], unit: str, n_key: str = "sample") -> Evidence:
        adjusted = _num(item.get("adjusted_lift"))
        lift_ci_raw = item.get("adjusted_lift_ci")
        lift_ci: tuple[float, float] | None = None
        if isinstance(lift_ci_raw, list | tuple) and len(lift_ci_raw) == 2:
            lo, hi = _num(lift_ci_raw[0]), _num(lift_ci_raw[1])
            if lo is not None and hi is not None:
                lift_ci = (lo, hi)
        elif isinstance(lift_ci_raw, Mapping):
            lo, hi = _num(lift_ci_raw.get("low", lift_ci_raw.get("ci_low"))), _num(
                lift_ci_raw.get("high", lift_ci_raw.get("ci_high")))
            if lo is not None and hi is not None:
                lift_ci = (lo, hi)
        return cls(
            unit=unit,
            n=_count(item.get(n_key, item.get("sample", item.get("sample_size")))),
            conversions=_count(item.get("conversions")),
            rate=_num(item.get("conversion_rate")),
            ci_low=_num(item.get("ci_low")),
            ci_high=_num(item.get("ci_high")),
            lift=adjusted if adjusted is not None else _num(item.get("lift")),
            lift_ci=lift_ci,
            adjusted=adjusted is not None,
        )

    def text(self) -> str:
        parts: list[str] = []
        if self.rate is not None:
            parts.append(_pct(self.rate))
        if self.conversions is not None and self.n is not None:
            parts.append(f"{self.conversions} of {self.n} {self.unit}")
        elif self.n is not None:
            parts.append(f"{self.n} {self.unit}")
        if self.ci_low is not None and self.ci_high is not None:
            parts.append(f"95% interval {_pct(self.ci_low)}-{_pct(self.ci_high)}")
        if self.lift is not None:
            label = "adjusted lift" if self.adjusted else "lift"
            text = f"{label} {self.lift:.2f}x"
            if self.lift_ci is not None:
                text += f" ({self.lift_ci[0]:.2f}-{self.lift_ci[1]:.2f})"
            parts.append(text)
        return ", ".join(parts)


@dataclass(frozen=True)
class Statement:
    """One thing an agent is told, with the pattern and evidence behind it."""

    source: str           # who, what, when, how
    topic: str            # title, industry, pain_point, cta, subject, angle, length, day, hour, ...
    advice: str           # use, avoid, info
    text: str
    evidence: Evidence | None = None
    flags: tuple[str, ...] = ()

    def render(self) -> str:
        out = self.text
        if self.evidence is not None and self.evidence.text():
            out += f" [{self.evidence.text()}]"
        if self.flags:
            out += " (" + ", ".join(self.flags) + ")"
        return out


@dataclass(frozen=True)
class PatternStatus:
    """Whether a pattern was used, and why not."""

    kind: str
    present: bool
    used: bool
    reason: str | None
    sample_size: int | None
    confidence: float | None
    computed_at: str | None
    stale: bool


def _status(kind: str, pattern: Any, include_stale: bool) -> PatternStatus:
    if not isinstance(pattern, Mapping) or not pattern:
        return PatternStatus(kind, False, False, f"No {kind.upper()} pattern has been computed for this client.",
                             None, None, None, False)
    sample = _count(pattern.get("sample_size"))
    confidence = _num(pattern.get("confidence"))
    computed = pattern.get("computed_at")
    computed_text = str(computed) if computed is not None else None
    stale = bool(pattern.get("stale"))
    if pattern.get("insufficient_data") or pattern.get("status") == "insufficient_data":
        return PatternStatus(kind, True, False,
                             f"{kind.upper()}: not enough outcomes yet ({sample or 0}): no advice from it.",
                             sample, confidence, computed_text, stale)
    if stale and not include_stale:
        return PatternStatus(kind, True, False,
                             f"{kind.upper()} pattern is stale (computed {computed_text}): not used until refreshed.",
                             sample, confidence, computed_text, stale)
    return PatternStatus(kind, True, True, None, sample, confidence, computed_text, stale)


def _flags(status: PatternStatus) -> tuple[str, ...]:
    flags: list[str] = []
    if status.stale:
        flags.append("stale")
    if status.confidence is not None and status.confidence < LOW_CONFIDENCE:
        flags.append("low confidence")
    return tuple(flags)


# -- per pattern -----------------------------------------------------------------------------------

def _significant(items: list[Mapping[str, Any]], wanted: str) -> list[Mapping[str, Any]]:
    return [x for x in items if x.get("significance") == wanted]


def _ranked(pattern: Mapping[str, Any], group: str, listed: str, wanted: str) -> list[Mapping[str, Any]]:
    """The pattern's winners (or losers) list when present, else its rankings filtered, top 3."""
    chosen = _items(_get(pattern, group, listed))
    if not chosen:
        chosen = _items(_get(pattern, group, "rankings"))
    return _significant(chosen, wanted)[:TOP]


def _with_band(sweet: Mapping[str, Any], distribution: Any) -> Mapping[str, Any]:
    """The sweet spot with what its band of the size distribution adds (conversions, interval).

    The detector's sweet_spot carries the rate, sample and lift; the band of the same range in
    size_analysis.distribution carries the bookings and the 95% interval too.
    """
    bounds = (sweet.get("min"), sweet.get("max"))
    band = next((b for b in _items(distribution)
                 if (None not in bounds and (b.get("min"), b.get("max")) == bounds)
                 or (sweet.get("range") is not None and b.get("range") == sweet.get("range"))), None)
    if band is None or _count(band.get("sample")) != _count(sweet.get("sample", band.get("sample"))):
        return sweet  # no band of that range, or another sample: its figures would not be the sweet spot's
    return {**band, **{k: v for k, v in sweet.items() if v is not None}}


def _who(p: Mapping[str, Any], flags: tuple[str, ...]) -> list[Statement]:
    out: list[Statement] = []
    for key, label in (("title_rankings", "title"), ("industry_rankings", "industry")):
        items = _items(p.get(key))
        for item in _significant(items, "above")[:TOP]:
            out.append(Statement("who", label, "use", f"Target {label} '{item.get(label)}': books above the "
                                 "client's rate", Evidence.of(item, "leads"), flags))
        for item in _significant(items, "below")[:TOP]:
            out.append(Statement("who", label, "avoid", f"Deprioritise {label} '{item.get(label)}': books below "
                                 "the client's rate", Evidence.of(item, "leads"), flags))
    sweet = _get(p, "size_analysis", "sweet_spot")
    if isinstance(sweet, Mapping) and sweet.get("significance") == "above":
        size_range = sweet.get("range") or f"{sweet.get('min')}-{sweet.get('max')}"
        out.append(Statement("who", "company_size", "use", f"Company size sweet spot: {size_range} employees",
                             Evidence.of(_with_band(sweet, _get(p, "size_analysis", "distribution")), "leads"),
                             flags))
    segments = _get(p, "timing_signals", "segments")
    definitions = _get(p, "timing_signals", "definitions")
    if isinstance(segments, Mapping):
        for signal in sorted(segments):
            for item in _items(segments.get(signal)):
                if item.get("flag") is True and item.get("significance") in ("above", "below"):
                    meaning = signal_meaning(signal, _get(definitions, signal))
                    verb = "book more" if item.get("significance") == "above" else "book less"
                    out.append(Statement("who", "timing_signal", "use" if verb == "book more" else "avoid",
                                         f"Leads with signal '{plain_name(signal)}' ({meaning}) {verb}",
                                         Evidence.of(item, "leads"), flags))
    return out


def _named(group: str, value: Any) -> Any:
    """Angles and pain points are named by identifiers (roi_focused): in words; subjects and CTAs are texts."""
    return plain_name(value) if group in ("angles", "pain_points") else value


def _what(p: Mapping[str, Any], flags: tuple[str, ...]) -> list[Statement]:
    out: list[Statement] = []
    specs = (
        ("pain_points", "pain_point", "effective", "ineffective", "Lead with pain point '{}'", "Avoid pain point '{}'"),
        ("ctas", "cta", "effective", "ineffective", "Use the CTA \"{}\"", "Avoid the CTA \"{}\""),
        ("subject_patterns", "pattern", "winning", "losing", "Subject line that books: \"{}\"",
         "Avoid the subject line \"{}\""),
        ("angles", "angle", "effective", "ineffective", "Angle that books: {}", "Avoid the angle {}"),
    )
    for group, label, good, bad, use_text, avoid_text in specs:
        topic = "subject" if group == "subject_patterns" else label
        for item in _ranked(p, group, good, "above"):
            out.append(Statement("what", topic, "use", use_text.format(_named(group, item.get(label))),
                                 Evidence.of(item, "touches"), flags))
        for item in _ranked(p, group, bad, "below"):
            out.append(Statement("what", topic, "avoid", avoid_text.format(_named(group, item.get(label))),
                                 Evidence.of(item, "touches"), flags))
    lengths = _get(p, "optimal_length")
    if isinstance(lengths, Mapping):
        for channel in ("email", "linkedin", "sms"):
            spec = lengths.get(channel)
            if not isinstance(spec, Mapping) or spec.get("significant") is not True:
                continue
            unit = "characters" if channel == "sms" else "words"
            best = spec.get("optimal_chars") if channel == "sms" else spec.get("optimal_words")
            # The evidence is the winning band of the distribution (the one the range names).
            bands = _items(spec.get("distribution"))
            band = next((b for b in bands if b.get("range_min") == spec.get("range_min")
                         and b.get("range_max") == spec.get("range_max")), None)
            if band is None:
                band = next((b for b in bands if b.get("significance") == "above"), None)
            if band is None:
                continue  # nothing to show for it: say nothing
            out.append(Statement("what", "length", "use",
                                 f"{channel.title()} length: about {best} {unit} "
                                 f"({spec.get('range_min')}-{spec.get('range_max')})",
                                 Evidence.of(band, "touches"), flags))
    details = _get(p, "personalization_details")
    if isinstance(details, Mapping):
        for kind in sorted(details):
            detail = details.get(kind)
            if isinstance(detail, Mapping) and detail.get("significance") in ("above", "below"):
                with_ = detail.get("with")
                ev = Evidence.of(with_, "touches") if isinstance(with_, Mapping) else None
                if detail.get("significance") == "above":
                    out.append(Statement("what", "personalization", "use",
                                         f"Personalise with {kind.replace('_', ' ')}", ev, flags))
                else:
                    out.append(Statement("what", "personalization", "avoid",
                                         f"Personalisation by {kind.replace('_', ' ')} books less", ev, flags))
    return out


def _when(p: Mapping[str, Any], flags: tuple[str, ...]) -> list[Statement]:
    out: list[Statement] = []
    for key, label, advice in (("best_days", "day", "use"), ("worst_days", "day", "avoid"),
                               ("best_hours", "hour", "use"), ("worst_hours", "hour", "avoid")):
        wanted = "above" if advice == "use" else "below"
        for item in _significant(_items(p.get(key)), wanted)[:TOP]:
            name = f"{int(_num(item.get('hour')) or 0):02d}:00 local time" if label == "hour" else str(item.get("day"))
            text = f"Send on {name}" if label == "day" else f"Send at {name}"
            if advice == "avoid":
                text = f"Avoid sending {'on' if label == 'day' else 'at'} {name}"
            out.append(Statement("when", label, advice, text, Evidence.of(item, "touches"), flags))
    for item in _significant(_items(p.get("winning_positions")), "above")[:TOP]:
        out.append(Statement("when", "peak_touch", "use",
                             f"Touch {item.get('position', item.get('touch'))} converts above the other touches: "
                             "make it the strongest message", Evidence.of(item, "touches"), flags))
    for item in _significant(_items(p.get("gap_rankings")), "above")[:TOP]:
        out.append(Statement("when", "gap", "use", f"Gaps of {item.get('gap_days')} days before a touch book more",
                             Evidence.of(item, "touches"), flags))
    for item in _significant(_items(p.get("gap_rankings")), "below")[:TOP]:
        out.append(Statement("when", "gap", "avoid", f"Gaps of {item.get('gap_days')} days before a touch book less",
                             Evidence.of(item, "touches"), flags))
    dist = p.get("converting_touch_distribution")
    bookings = _count(_get(p, "metadata", "bookings"))
    if isinstance(dist, Mapping) and dist:
        shares = [(k, v) for k, v in ((str(k), _num(v)) for k, v in dist.items()) if v is not None]
        if shares:
            peak = min(shares, key=lambda kv: (-kv[1], kv[0]))
            ev = Evidence("bookings", n=bookings,
                          conversions=round(peak[1] * bookings) if bookings is not None else None)
            out.append(Statement("when", "converting_touch", "info",
                                 f"Most bookings come on {peak[0].replace('_', ' ')} ({_pct(peak[1])} of bookings)",
                                 ev, flags))
    gaps = p.get("optimal_sequence_gaps")
    if isinstance(gaps, Mapping) and gaps:
        text = ", ".join(f"{k.replace('touch_', '').replace('_to_', '->')}: {_num(v)}"
                         for k, v in sorted(gaps.items()) if _num(v) is not None)
        if text:
            # optimal_sequence_gaps: the median gap at each step over the booked leads that had both
            # touches before booking (fewer at the later steps): the n is the booked leads in all.
            out.append(Statement("when", "gap", "info",
                                 f"Typical (median) days between touches of booked leads, each gap over those that "
                                 f"had both touches before booking: {text}",
                                 Evidence("booked leads in all", n=bookings), flags))
    return out


def _how(p: Mapping[str, Any], flags: tuple[str, ...]) -> list[Statement]:
    out: list[Statement] = []
    for key, advice in (("winning_sequences", "use"), ("losing_sequences", "avoid")):
        wanted = "above" if advice == "use" else "below"
        for item in _significant(_items(p.get(key)), wanted)[:TOP]:
            seq = item.get("sequence")
            if not isinstance(seq, list):
                continue
            path = " -> ".join(map(str, seq))
            prob = _num(item.get("booking_probability"))
            text = f"Sequence that books: {path}" if advice == "use" else f"Avoid the sequence {path}"
            estimate = sequence_estimate(prob, _count(item.get("sample_size")))
            if estimate:
                text += f" ({estimate})"
            out.append(Statement("how", "sequence", advice, text, Evidence.of(item, SEQUENCE_TOUCHES), flags))
    for item in _significant(_items(p.get("best_first_channels")), "above")[:TOP]:
        out.append(Statement("how", "first_channel", "use", f"Open with {item.get('channel')}",
                             Evidence.of(item, "touches"), flags))
    for item in _significant(_items(p.get("channel_rankings")), "above")[:TOP]:
        out.append(Statement("how", "channel", "use", f"Channel {item.get('channel')} books above average",
                             Evidence.of(item, "touches"), flags))
    for item in _significant(_items(p.get("channel_rankings")), "below")[:TOP]:
        out.append(Statement("how", "channel", "avoid", f"Channel {item.get('channel')} books below average",
                             Evidence.of(item, "touches"), flags))
    return out


_BUILDERS = {"who": _who, "what": _what, "when": _when, "how": _how}


# -- the agents' inputs ----------------------------------------------------------------------------

def _section(title: str, statements: Sequence[Statement]) -> str:
    return title + ":\n" + "\n".join(f"- {s.render()}" for s in statements) if statements else ""


def _join(parts: Sequence[str]) -> str:
    return "\n\n".join(p for p in parts if p)


@dataclass(frozen=True)
class CampaignGenerationInput:
    """Spec 5.2: the campaign generation agent's pattern context."""

    client_name: str
    targeting: list[Statement]
    messaging: list[Statement]
    sequencing: list[Statement]
    caveats: list[str]

    def prompt(self) -> str:
        head = f"CONVERSION PATTERNS for {self.client_name} (learned from booked meetings; " \
               "each line gives its evidence):"
        body = _join([
            _section("WHO BOOKS (targeting)", self.targeting),
            _section("WHAT BOOKS (messaging)", self.messaging),
            _section("WHEN AND HOW IT BOOKS (sequencing)", self.sequencing),
            ("CAVEATS:\n" + "\n".join(f"- {c}" for c in self.caveats)) if self.caveats else "",
        ])
        if not (self.targeting or self.messaging or self.sequencing):
            body = _join(["No pattern-backed advice yet: write from the brief alone.", body])
        return head + "\n\n" + body


@dataclass(frozen=True)
class SequenceBuilderInput:
    """Spec 5.3: the sequence builder's input (ICP plus WHEN and HOW statements)."""

    client_icp: dict[str, Any]
    sequences: list[Statement]
    channels: list[Statement]
    timing: list[Statement]
    caveats: list[str]

    def prompt(self) -> str:
        parts = [
            _section("Historical winning and losing sequences", self.sequences),
            _section("Channels", self.channels),
            _section("Timing (local days and hours, peak touch, gaps between touches)", self.timing),
            ("Caveats:\n" + "\n".join(f"- {c}" for c in self.caveats)) if self.caveats else "",
        ]
        if not (self.sequences or self.channels or self.timing):
            parts.insert(0, "No WHEN or HOW pattern backs any advice yet: use the default sequence.")
        return _join(parts)


@dataclass(frozen=True)
class MessagingGeneratorInput:
    """Spec 5.4: the messaging generator's input (WHAT statements by use)."""

    client_icp: dict[str, Any]
    pain_points_use: list[Statement]
    pain_points_avoid: list[Statement]
    ctas_use: list[Statement]
    ctas_avoid: list[Statement]
    subjects_use: list[Statement]
    subjects_avoid: list[Statement]
    angles: list[Statement]
    lengths: list[Statement]
    personalization: list[Statement]
    caveats: list[str]

    def prompt(self) -> str:
        advice = (self.pain_points_use + self.pain_points_avoid + self.ctas_use + self.ctas_avoid
                  + self.subjects_use + self.subjects_avoid + self.angles + self.lengths + self.personalization)
        return _join([
            "" if advice else "No WHAT pattern backs any advice yet: write from the brief alone.",
            _section("EFFECTIVE PAIN POINTS (use these)", self.pain_points_use),
            _section("INEFFECTIVE PAIN POINTS (avoid these)", self.pain_points_avoid),
            _section("EFFECTIVE CTAs", self.ctas_use),
            _section("CTAs TO AVOID", self.ctas_avoid),
            _section("SUBJECT LINES THAT BOOK", self.subjects_use),
            _section("SUBJECT LINES TO AVOID", self.subjects_avoid),
            _section("ANGLES", self.angles),
            _section("OPTIMAL LENGTH", self.lengths),
            _section("PERSONALISATION", self.personalization),
            ("CAVEATS:\n" + "\n".join(f"- {c}" for c in self.caveats)) if self.caveats else "",
        ])


@dataclass(frozen=True)
class AgentContext:
    """Everything the three agents get, from one client's patterns."""

    client_name: str
    statuses: list[PatternStatus]
    statements: list[Statement]
    caveats: list[str]
    client_icp: dict[str, Any] = field(default_factory=dict)

    def _pick(self, source: str | None = None, topic: str | None = None, advice: str | None = None
              ) -> list[Statement]:
        return [s for s in self.statements
                if (source is None or s.source == source) and (topic is None or s.topic == topic)
                and (advice is None or s.advice == advice)]

    @property
    def targeting(self) -> list[Statement]:
        return self._pick("who")

    @property
    def messaging(self) -> list[Statement]:
        return self._pick("what")

    @property
    def sequencing(self) -> list[Statement]:
        return self._pick("when") + self._pick("how")

    def campaign(self) -> CampaignGenerationInput:
        return CampaignGenerationInput(self.client_name, self.targeting, self.messaging, self.sequencing,
                                       list(self.caveats))

    def sequence_builder(self) -> SequenceBuilderInput:
        channels = self._pick("how", "first_channel") + self._pick("how", "channel")
        return SequenceBuilderInput(dict(self.client_icp), self._pick("how", "sequence"), channels,
                                    self._pick("when"), self._caveats_of(("when", "how")))

    def messaging_generator(self) -> MessagingGeneratorInput:
        return MessagingGeneratorInput(
            dict(self.client_icp),
            self._pick("what", "pain_point", "use"), self._pick("what", "pain_point", "avoid"),
            self._pick("what", "cta", "use"), self._pick("what", "cta", "avoid"),
            self._pick("what", "subject", "use"), self._pick("what", "subject", "avoid"),
            self._pick("what", "angle"), self._pick("what", "length"), self._pick("what", "personalization"),
            self._caveats_of(("what",)),
        )

    def _caveats_of(self, kinds: Sequence[str]) -> list[str]:
        return [c for c in self.caveats if any(c.upper().startswith(k.upper()) or f" {k.upper()} " in c
                                               for k in kinds)]

    def prompts(self) -> dict[str, str]:
        return {"campaign": self.campaign().prompt(), "sequence": self.sequence_builder().prompt(),
                "messaging": self.messaging_generator().prompt()}

    def as_text(self) -> str:
        if not self.statements and all(not s.present for s in self.statuses):
            return "No conversion patterns yet: write from the brief alone."
        return self.campaign().prompt()

    def source_patterns(self) -> dict[str, str | None]:
        return {s.kind: s.computed_at for s in self.statuses}

    def to_json(self) -> dict[str, Any]:
        def statement(s: Statement) -> dict[str, Any]:
            d = asdict(s)
            d["flags"] = list(s.flags)
            d["evidence_text"] = s.evidence.text() if s.evidence else None
            if s.evidence is not None and s.evidence.lift_ci is not None:
                d["evidence"]["lift_ci"] = list(s.evidence.lift_ci)
            return d

        return {
            "client_name": self.client_name,
            "patterns": [asdict(s) for s in self.statuses],
            "campaign": [statement(s) for s in self.statements],
            "sequence": [statement(s) for s in self.sequence_builder().sequences
                         + self.sequence_builder().channels + self.sequence_builder().timing],
            "messaging": [statement(s) for s in self.messaging],
            "caveats": list(self.caveats),
        }


def build_context(patterns: Mapping[str, Any] | None, *, client_name: str = "this client",
                  client_icp: Mapping[str, Any] | None = None, include_stale: bool = False) -> AgentContext:
    """The agents' context from get_conversion_patterns' JSON ({who, what, when, how})."""
    data = patterns if isinstance(patterns, Mapping) else {}
    statuses: list[PatternStatus] = []
    statements: list[Statement] = []
    caveats: list[str] = []
    for kind in ("who", "what", "when", "how"):
        pattern = data.get(kind)
        status = _status(kind, pattern, include_stale)
        statuses.append(status)
        if status.reason:
            caveats.append(status.reason)
        if not status.used or not isinstance(pattern, Mapping):
            continue
        flags = _flags(status)
        if "stale" in flags:
            caveats.append(f"{kind.upper()} pattern is stale (computed {status.computed_at}): its lines are "
                           "flagged stale.")
        if "low confidence" in flags:
            caveats.append(f"{kind.upper()} confidence is low ({status.confidence:.2f}): treat its lines as hints.")
        found = _BUILDERS[kind](pattern, flags)
        statements.extend(found)
        warnings = pattern.get("health_warnings")
        if isinstance(warnings, list):
            caveats.extend(f"{kind.upper()} health warning: {w}" for w in warnings if w)
        if not found:
            caveats.append(f"{kind.upper()}: no segment clears the client's rate yet: nothing to recommend from it.")
    return AgentContext(client_name, statuses, statements, caveats, dict(client_icp or {}))


def context_json_text(ctx: AgentContext) -> str:
    """The context as stable JSON text (sorted keys)."""
    return json.dumps(ctx.to_json(), sort_keys=True)
