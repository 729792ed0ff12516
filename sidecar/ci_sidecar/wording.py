"""Plain words for texts a person (or a campaign-writing agent) reads.

The pattern JSON and the weight decisions keep their fields and their ``reason`` strings as the
database and the fit write them (the contract's shapes; ``reason`` comes from the fit module, the
same one PL/Python runs). Only what the sidecar prints or hands to the agents is translated here:

* ``weight_reason``: a weight decision's reason, with its numbers, without "AUC gain < 2.5 x SE";
* ``signal_meaning``: a timing signal's definition, never a raw column name such as
  ``organization_is_hiring``;
* ``sequence_estimate`` and ``SEQUENCE_TOUCHES``: a HOW sequence's figures as what they are. Its
  ``booking_probability`` is an estimate, 1 - prod(1 - h_j) over the booking rate h_j of each of its
  steps among the leads that reached that step, not the share of the ``sample_size`` leads (those
  that reached its last step) that booked; its ``conversions`` of ``sample`` count the touches sent
  along it (one per lead at each step it reached while following it) and those that booked;
* ``significance_words``: "above" / "below" / "none" against the client's rate, in words;
* ``plain_name``: a value the layer names by an identifier (an angle ``roi_focused``, a signal
  ``new_role``, a score component ``company_fit``) as words ("ROI focused", "new role", "company fit").
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

__all__ = ["COLUMN_LABELS", "SEQUENCE_TOUCHES", "lift_text", "plain_name", "sequence_estimate", "signal_meaning",
           "significance_words", "utc_stamp", "weight_reason"]

# Lead columns a pattern may name, as people say them.
COLUMN_LABELS = {
    "organization_is_hiring": "company is hiring",
    "organization_latest_funding_date": "company's latest funding date",
    "organization_employee_count": "company's employee count",
    "organization_industry": "company's industry",
    "organization_country": "company's country",
    "employment_start_date": "start date in the current role",
}

_IDENTIFIER = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")


def signal_meaning(signal: str, definition: object) -> str:
    """What a timing signal means, for people: its definition, a column name put in words."""
    text = str(definition).strip() if isinstance(definition, str) and definition.strip() else signal
    if text in COLUMN_LABELS:
        return COLUMN_LABELS[text]
    if _IDENTIFIER.fullmatch(text):
        return text.replace("organization_", "company ").replace("_", " ")
    return text


# Words kept in capitals when an identifier is put in words.
_ACRONYMS = {"roi": "ROI", "icp": "ICP", "ceo": "CEO", "cto": "CTO", "cfo": "CFO", "vp": "VP", "saas": "SaaS",
             "crm": "CRM", "sms": "SMS"}


def plain_name(value: object) -> str:
    """An identifier-like value in words ("roi_focused" -> "ROI focused"); any other text as it is."""
    text = "" if value is None else str(value)
    if not _IDENTIFIER.fullmatch(text):
        return text
    return " ".join(_ACRONYMS.get(word, word) for word in text.split("_"))


_NUM = r"(-?\d+(?:\.\d+)?)"


def _not_reliable(m: re.Match[str]) -> str:
    gain, z, se = m.group(1), m.group(2), m.group(3)
    return (f"the learned weights did not rank booked leads clearly better than the current ones (on leads held "
            f"out of the fit the ranking quality, AUC, rose by {gain}: less than {z} standard errors, "
            f"{z} x {se} = {float(z) * float(se):.5f}, so the gain may be chance)")


def _no_gain(m: re.Match[str]) -> str:
    return (f"the learned weights did not rank booked leads better than the current ones on leads held out of "
            f"the fit (ranking quality, AUC, changed by {m.group(1)}; at least {m.group(2)} is needed)")


def _applied(m: re.Match[str]) -> str:
    return (f"the learned weights ranked booked leads better than the current ones on leads held out of the fit "
            f"(ranking quality, AUC, {m.group(1)} -> {m.group(2)}, averaged over {m.group(3)} rounds, each holding "
            f"out a different part of the leads); each weight moved by "
            f"at most {m.group(4)}")


_REASONS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(rf"improvement not reliable: AUC gain {_NUM} < {_NUM} x SE {_NUM}"), _not_reliable),
    (re.compile(rf"no out-of-sample improvement: AUC gain {_NUM} < {_NUM}"), _no_gain),
    (re.compile(rf"held-out AUC {_NUM} -> {_NUM} over (\d+) folds; step of at most {_NUM}"), _applied),
    (re.compile(r"out-of-sample check impossible: fewer than 2 usable folds"),
     lambda _m: "too few leads with an outcome to check the learned weights on leads held out of the fit "
                "(fewer than 2 usable rounds of holding leads out)"),
    (re.compile(r"weights in force are already the best fit"),
     lambda _m: "the current weights already fit best"),
]


def weight_reason(reason: object) -> str:
    """A weight decision's ``reason`` in plain words (numbers kept); unknown reasons as they are."""
    text = "" if reason is None else str(reason)
    for pattern, say in _REASONS:
        m = pattern.fullmatch(text)
        if m:
            return say(m)
    return text


# A sequence's conversions of sample, as Evidence's unit: "46 of 1550 touches sent along it booked".
SEQUENCE_TOUCHES = "touches sent along it booked"


def sequence_estimate(probability: float | None, leads: object) -> str:
    """A sequence's booking_probability and sample_size, said as what they are (an estimate, and a count)."""
    parts = []
    if probability is not None:
        parts.append(f"an estimated {probability * 100:.1f}% of leads book along it, from the booking rate at "
                     "each step")
    if leads is not None:
        parts.append(f"{leads} leads went down the whole sequence")
    return "; ".join(parts)


_SIGNIFICANCE = {
    "above": "above the client's rate",
    "below": "below the client's rate",
    "none": "no clear difference from the client's rate",
}


def significance_words(significance: object) -> str:
    """A segment's significance against the client's rate, in words ("none" is not "no effect")."""
    return _SIGNIFICANCE.get(str(significance), str(significance))


def lift_text(value: object) -> str:
    """A lift with two decimals always ("0.60x", not "0.6" next to "1.05"); "n/a" for no number."""
    if value is None or isinstance(value, bool):
        return "n/a"
    try:
        return f"{float(value):.2f}x"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "n/a"


def utc_stamp(value: object, seconds: bool = True) -> str:
    """A timestamp in UTC without microseconds ("2026-12-01 19:40:20 UTC", or to the minute)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return f"{value:%Y-%m-%d %H:%M:%S} UTC" if seconds else f"{value:%Y-%m-%d %H:%M} UTC"
    return "n/a" if value is None else str(value)
