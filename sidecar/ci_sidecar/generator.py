"""Realistic multi-client outbound history with effects you plant and can switch off.

Deterministic by seed (and by ``GeneratorConfig.anchor``, the "now" of the history,
never the wall clock). Writes through COPY, so a million leads take minutes, not hours.

The model: every lead gets a planned sequence of up to six outbound touches over email,
LinkedIn, SMS and voice, sent in the lead's *local* business hours (several time zones).
At each touch the lead books a meeting with a hazard

    base x WHO(lead) x WHAT(touch content) x WHEN(local day, local hour, position) x HOW(channels)

where every factor is 1.0 under ``Effects.none()``. A lead that books stops receiving
touches (survivorship, as in real sequences); a lead whose remaining touches lie after
the anchor is still open (censored); a lead that received all touches without booking
failed (not_interested, dead, unsubscribed or bounced). Conversions are recorded either
as a status change with converted_at (backfill style) or as a ``meeting_booked``
activity (webhook style), so both conversion paths of the contract are exercised; the
converting-touch marks are then derived by the database (triggers and
``ci_private.backfill_converting_touches``).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import psycopg

__all__ = [
    "PLANTED",
    "Effects",
    "GenerationResult",
    "GeneratorConfig",
    "generate",
    "main",
    "planned_client_ids",
    "soft_deleted_note",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# The planted effects: what each names and by how much it multiplies the booking hazard.
PLANTED: dict[str, dict[str, Any]] = {
    "title": {"value": "vp marketing", "raw": ["VP of Marketing", "VP Marketing", "Vice President of Marketing"],
              "factor": 3.0},
    "industry": {"value": "Dental", "factor": 2.5},
    "size": {"min": 16, "max": 30, "factor": 2.0},
    "funded": {"within_months": 12, "factor": 2.0},
    "hiring": {"factor": 1.5},
    "new_role": {"within_months": 6, "factor": 1.8},
    "subject": {"value": "Question about {company}", "factor": 2.0},
    "pain_point": {"value": "scaling", "factor": 1.8},
    "cta": {"value": "worth 15 minutes", "factor": 1.7},
    "angle": {"value": "roi_focused", "factor": 1.5},
    "email_length": {"min_words": 50, "max_words": 100, "factor": 1.6},
    "recent_news": {"factor": 1.6},
    "day": {"value": "Tuesday", "dow": 2, "factor": 2.0},
    "hour": {"value": 10, "factor": 2.0},
    "position": {"value": 3, "factor": 2.5},
    "first_channel": {"value": "linkedin", "factor": 1.5},
    "voice_after_email": {"factor": 1.8},
}


@dataclass(frozen=True)
class Effects:
    """Multipliers of the booking hazard; 1.0 means no effect."""

    title: float = 1.0
    industry: float = 1.0
    size: float = 1.0
    funded: float = 1.0
    hiring: float = 1.0
    new_role: float = 1.0
    subject: float = 1.0
    pain_point: float = 1.0
    cta: float = 1.0
    angle: float = 1.0
    email_length: float = 1.0
    recent_news: float = 1.0
    day: float = 1.0
    hour: float = 1.0
    position: float = 1.0
    first_channel: float = 1.0
    voice_after_email: float = 1.0

    @classmethod
    def none(cls) -> Effects:
        """No effect at all: every segment converts alike."""
        return cls()

    @classmethod
    def planted(cls, **overrides: float) -> Effects:
        """Every effect of PLANTED, optionally with some overridden (e.g. day=1.0)."""
        values = {f.name: float(PLANTED[f.name]["factor"]) for f in fields(cls)}
        values.update(overrides)
        return cls(**values)

    @classmethod
    def only(cls, *names: str) -> Effects:
        """Just the named planted effects."""
        return cls(**{name: float(PLANTED[name]["factor"]) for name in names})


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 42
    clients: int = 1
    leads_per_client: int = 2000
    effects: Effects = field(default_factory=Effects.planted)
    open_share: float = 0.15
    junk_share: float = 0.0
    snapshot_share: float = 0.8
    opened_share: float = 0.25
    deleted_share: float = 0.01
    base_touch_rate: float = 0.02
    anchor: dt.datetime = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    client_name_prefix: str = "Generated client"
    # Ids come from their own stream: the same seed gives the same data, and a
    # different id_salt gives it fresh ids (None: a random salt, so that loading the
    # same seed twice into one database never collides).
    id_salt: int | None = None
    progress: Callable[[str], None] | None = None
    # Shapes of real outbound data (all off by default: the demo's history is unchanged).
    # step_templates: every step of a sequence sends its own small pool of templates
    # (subject, pain point, CTA, angle, length: STEP_POOLS), as real sequences do, so
    # content is confounded with the step; step_weekdays: step j is sent on local weekday
    # step_weekdays[j] (Monday = 0), the next such day after the previous touch;
    # unique_bodies: bodies rendered per lead (a sentence of their own), so every
    # snapshot's body is distinct; constant_components: ALS components that do not vary
    # in the client's data ("data_quality": every lead has the same contact data;
    # "timing": no hiring, funding or new role); uncontacted_leads: leads added with
    # status bounced and no outbound touch at all (a bounced import), with title
    # UNCONTACTED_TITLE.
    step_templates: bool = False
    step_weekdays: tuple[int, ...] | None = None
    unique_bodies: bool = False
    constant_components: frozenset[str] = frozenset()
    uncontacted_leads: int = 0


@dataclass(frozen=True)
class ClientSummary:
    client_id: uuid.UUID
    name: str
    leads: int
    activities: int
    converted: int
    failed: int
    open: int
    marks: int
    """Converting-touch marks present after the load (not the backfill's count of marks it changed)."""
    deleted: int = 0
    """Leads written soft-deleted (deleted_at set): in ``leads``, ignored by every pattern and score."""


@dataclass(frozen=True)
class GenerationResult:
    client_ids: list[uuid.UUID]
    clients: list[ClientSummary]
    seconds: float

    @property
    def leads(self) -> int:
        return sum(c.leads for c in self.clients)

    @property
    def activities(self) -> int:
        return sum(c.activities for c in self.clients)

    @property
    def deleted(self) -> int:
        return sum(c.deleted for c in self.clients)


# --- vocabulary -------------------------------------------------------------------------

CHANNELS = ["email", "linkedin", "sms", "voice"]
SEQUENCES: list[list[str]] = [
    ["email", "linkedin", "email", "voice", "email", "sms"],
    ["linkedin", "email", "email", "linkedin", "sms", "email"],
    ["email", "email", "linkedin", "email", "voice", "email"],
    ["email", "sms", "email", "linkedin", "email", "voice"],
    ["linkedin", "linkedin", "email", "voice", "email", "email"],
    ["email", "email", "email", "email", "email", "email"],
    ["voice", "email", "linkedin", "email", "sms", "email"],
    ["sms", "email", "voice", "email", "linkedin", "email"],
]
SEQUENCE_WEIGHTS = [0.2, 0.15, 0.15, 0.1, 0.1, 0.12, 0.08, 0.1]
SEED_ACTION = {"email": "email_sent", "linkedin": "linkedin_sent", "sms": "sms_sent", "voice": "voice_completed"}

TITLES = [
    "VP of Marketing", "VP Marketing", "Vice President of Marketing", "CEO", "Owner", "Founder",
    "Marketing Director", "Director of Sales", "Head of Growth", "Marketing Manager", "Office Manager",
    "Senior Manager, Operations", "Team Lead", "Marketing Coordinator", "CFO", "Practice Administrator",
]
TITLE_WEIGHTS = [0.04, 0.03, 0.02, 0.08, 0.1, 0.06, 0.1, 0.06, 0.05, 0.12, 0.08, 0.05, 0.05, 0.05, 0.04, 0.07]
INDUSTRIES = ["Dental", "Legal", "Accounting", "Real Estate", "Construction", "Healthcare", "Retail", "SaaS"]
INDUSTRY_WEIGHTS = [0.14, 0.14, 0.13, 0.13, 0.12, 0.12, 0.11, 0.11]
COUNTRIES = ["US", "UK", "CA", "AU", "DE"]
COUNTRY_WEIGHTS = [0.5, 0.15, 0.1, 0.15, 0.1]
COUNTRY_ZONES: dict[str, list[str]] = {
    "US": ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"],
    "UK": ["Europe/London"],
    "CA": ["America/Toronto", "America/Vancouver"],
    "AU": ["Australia/Sydney", "Australia/Perth"],
    "DE": ["Europe/Berlin"],
}
CLIENT_ZONES = ["America/New_York", "Europe/London", "Australia/Sydney", "America/Chicago"]
FIRST_NAMES = ["Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Jamie", "Riley", "Avery", "Quinn"]
LAST_NAMES = ["Smith", "Jones", "Brown", "Garcia", "Miller", "Davis", "Wilson", "Moore", "Clark", "Lewis"]

SUBJECTS = [
    "Question about {company}", "Quick question", "{first_name} - {pain_point}", "Partnership opportunity",
    "Introduction", "Thought for {company}", "{company} and {pain_point}", "Hello {first_name}",
]
# Each label with the words that the seed's keyword dictionaries recognise for it.
PAIN_POINTS: dict[str, str] = {
    "leads": "your pipeline of qualified prospects",
    "revenue": "revenue and profit",
    "time": "hours lost to manual work",
    "scaling": "the capacity to scale",
    "competition": "competitors gaining market share",
    "cost": "an expensive budget",
    "quality": "the quality of outcomes",
}
CTAS = [
    "open to a quick chat", "worth 15 minutes", "free audit", "quick call", "interested in learning",
    "schedule a call", "book a time", "happy to share", "let me know",
]
ANGLES: dict[str, str] = {
    "roi_focused": "the return in percent",
    "social_proof": "companies like yours have seen this",
    "curiosity": "I was wondering about this",
    "fear_based": "you may be missing out and at risk",
    "value_add": "a complimentary assessment",
}
# Step-bound templates (GeneratorConfig.step_templates): the pools of step 1..6, two
# variants of each element per step (an A/B test inside the step). The planted subject,
# pain point, CTA and angle each sit in one step's pool next to a neutral variant, so a
# content effect is identifiable within its step; the step-3 templates ("Quick question",
# "Thought for {company}") belong to step 3 only.
STEP_POOLS: list[dict[str, list[Any]]] = [
    {"subject": [4, 3], "pain": ["leads", "revenue"], "cta": ["open to a quick chat", "let me know"],
     "angle": ["value_add", "curiosity"], "words": [140, 170]},
    {"subject": [0, 7], "pain": ["scaling", "time"], "cta": ["quick call", "happy to share"],
     "angle": ["social_proof", "value_add"], "words": [70, 120]},
    {"subject": [1, 5], "pain": ["cost", "quality"], "cta": ["book a time", "interested in learning"],
     "angle": ["curiosity", "fear_based"], "words": [45, 60]},
    {"subject": [2, 6], "pain": ["competition", "leads"], "cta": ["worth 15 minutes", "schedule a call"],
     "angle": ["value_add", "social_proof"], "words": [110, 130]},
    {"subject": [3, 7], "pain": ["revenue", "time"], "cta": ["free audit", "let me know"],
     "angle": ["roi_focused", "curiosity"], "words": [80, 100]},
    {"subject": [6, 2], "pain": ["quality", "cost"], "cta": ["happy to share", "quick call"],
     "angle": ["fear_based", "social_proof"], "words": [30, 40]},
]
UNCONTACTED_TITLE = "Operations Analyst"
# Neutral words: none of them is a keyword of any dictionary.
FILLER = ["we", "work", "with", "firms", "in", "your", "area", "on", "a", "simple", "plan", "that", "fits", "how", "you", "run", "things", "today", "and", "keeps", "the", "work", "light", "for", "you", "and", "your", "staff", "so", "nothing", "changes", "on", "your", "side"]


# --- helpers --------------------------------------------------------------------------------


def _uuid(rng: np.random.Generator) -> uuid.UUID:
    return uuid.UUID(bytes=rng.bytes(16), version=4)


def _copy_value(value: object) -> str:
    """One field in COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    text = str(value)
    if any(ch in text for ch in "\\\t\n\r"):
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def _pg_array(values: Sequence[str]) -> str:
    return "{" + ",".join('"' + v.replace('"', '\\"') + '"' for v in values) + "}"


def _copy_rows(conn: psycopg.Connection[Any], table: str, columns: Sequence[str],
               rows: Iterator[Sequence[object]], batch: int = 20000) -> int:
    count = 0
    sql = f"copy public.{table} ({', '.join(columns)}) from stdin"
    with conn.cursor() as cur, cur.copy(sql) as copy:
        buf: list[str] = []
        for row in rows:
            buf.append("\t".join(_copy_value(v) for v in row))
            count += 1
            if len(buf) >= batch:
                copy.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            copy.write("\n".join(buf) + "\n")
    return count


_BODY_CACHE: dict[tuple[str, str, str, int], str] = {}


def _body(pain: str, angle: str, cta: str, words: int) -> str:
    key = (pain, angle, cta, words)
    cached = _BODY_CACHE.get(key)
    if cached is not None:
        return cached
    core = f"Hi {{first_name}}, about {PAIN_POINTS[pain]} at {{company}}: {ANGLES[angle]}. Would you be {cta}?"
    have = len(core.split())
    filler = [FILLER[i % len(FILLER)] for i in range(max(words - have, 0))]
    text = core if not filler else core + " " + " ".join(filler) + "."
    _BODY_CACHE[key] = text
    return text


def _fill(template: str, first_name: str, company: str, pain: str) -> str:
    return template.replace("{first_name}", first_name).replace("{company}", company).replace("{pain_point}", pain)


# --- simulation of one client ------------------------------------------------------------


@dataclass
class _Leads:
    n: int
    ids: list[uuid.UUID]
    title: npt.NDArray[np.int64]
    industry: IntArray
    employees: npt.NDArray[np.float64]
    country: IntArray
    zone: list[str]
    lead_zone: list[str | None]
    campaign: IntArray
    hiring: BoolArray
    funded_days_before: FloatArray
    role_days_before: FloatArray
    seq: IntArray
    start_day: IntArray
    never_touched: BoolArray
    deleted: BoolArray


def _simulate_client(rng: np.random.Generator, id_rng: np.random.Generator, cfg: GeneratorConfig,
                     client_zone: str, campaign_zones: list[str | None],
                     n: int) -> tuple[_Leads, dict[str, Any]]:
    eff = cfg.effects
    ids = [_uuid(id_rng) for _ in range(n)]
    title = rng.choice(len(TITLES), size=n, p=np.array(TITLE_WEIGHTS) / sum(TITLE_WEIGHTS))
    industry = rng.choice(len(INDUSTRIES), size=n, p=np.array(INDUSTRY_WEIGHTS) / sum(INDUSTRY_WEIGHTS))
    employees = np.round(np.exp(rng.normal(3.3, 0.9, size=n))).astype(np.float64)
    employees[rng.random(n) < 0.03] = np.nan
    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_WEIGHTS)
    zones_of = [COUNTRY_ZONES[COUNTRIES[c]] for c in country]
    zone_pick = rng.integers(0, 4, size=n)
    lead_zone: list[str | None] = [z[zone_pick[i] % len(z)] for i, z in enumerate(zones_of)]
    campaign = rng.integers(0, len(campaign_zones), size=n)
    no_zone = rng.random(n) < 0.15
    zone: list[str] = []
    for i in range(n):
        if no_zone[i]:
            lead_zone[i] = None
        z = lead_zone[i] or campaign_zones[campaign[i]] or client_zone
        zone.append(z)
    hiring = rng.random(n) < 0.3
    funded_days_before = np.where(rng.random(n) < 0.35, rng.uniform(0, 36 * 30.4, size=n), np.nan)
    role_days_before = rng.uniform(0, 48 * 30.4, size=n)
    role_days_before[rng.random(n) < 0.05] = np.nan
    seq = rng.choice(len(SEQUENCES), size=n, p=np.array(SEQUENCE_WEIGHTS) / sum(SEQUENCE_WEIGHTS))

    # Start days: finished sequences start early enough, open ones inside the last span.
    anchor_day = int((cfg.anchor.date() - dt.date(1970, 1, 1)).days)
    span = 45
    is_recent = rng.random(n) < cfg.open_share * 1.6
    start_day = np.where(
        is_recent,
        anchor_day - rng.integers(1, span, size=n),
        anchor_day - span - rng.integers(0, 200, size=n),
    ).astype(np.int64)
    never_touched = rng.random(n) < 0.03
    deleted = rng.random(n) < cfg.deleted_share
    leads = _Leads(n, ids, title, industry, employees, country, zone, lead_zone, campaign, hiring,
                   funded_days_before, role_days_before, seq, start_day, never_touched, deleted)

    # --- touches: (n, 6) ---
    k = 6
    gaps = rng.choice([1, 2, 3, 4, 5, 7], size=(n, k), p=[0.15, 0.25, 0.25, 0.15, 0.1, 0.1])
    gaps[:, 0] = 0
    local_day = start_day[:, None] + np.cumsum(gaps, axis=1)
    weekday = (local_day + 3) % 7  # Monday = 0
    weekend = weekday >= 5
    move = weekend & (rng.random((n, k)) < 0.85)
    local_day = local_day + np.where(move, 7 - weekday, 0)
    local_day = np.maximum.accumulate(local_day, axis=1)
    if cfg.step_weekdays:
        # Step j on its fixed local weekday: the first such day after the previous touch.
        for j in range(k):
            target = cfg.step_weekdays[j % len(cfg.step_weekdays)]
            day = local_day[:, j] if j == 0 else np.maximum(local_day[:, j], local_day[:, j - 1] + 1)
            local_day[:, j] = day + (target - (day + 3) % 7) % 7
    weekday = (local_day + 3) % 7
    hour = rng.choice(np.arange(7, 19), size=(n, k),
                      p=np.array([2, 8, 10, 10, 9, 6, 8, 9, 9, 8, 6, 3], dtype=float) / 88)
    minute = rng.integers(0, 60, size=(n, k))
    channels = np.array(SEQUENCES)[seq]  # (n, 6) of str
    subject = rng.integers(0, len(SUBJECTS), size=(n, k))
    pain = rng.integers(0, len(PAIN_POINTS), size=(n, k))
    cta = rng.integers(0, len(CTAS), size=(n, k))
    angle = rng.integers(0, len(ANGLES), size=(n, k))
    words = np.where(channels == "email", rng.integers(6, 37, size=(n, k)) * 5,
                     np.where(channels == "linkedin", rng.integers(4, 16, size=(n, k)) * 5,
                              rng.integers(3, 9, size=(n, k)) * 3))
    recent_news = rng.random((n, k)) < 0.25
    mutual = (channels == "linkedin") & (rng.random((n, k)) < 0.2)
    industry_specific = rng.random((n, k)) < 0.3
    if cfg.step_templates:
        # Each step draws from its own pool (STEP_POOLS): content is bound to the step.
        variant = rng.integers(0, 2, size=(n, k, 5))
        pain_names, angle_names = list(PAIN_POINTS), list(ANGLES)
        for j in range(k):
            pool = STEP_POOLS[j % len(STEP_POOLS)]
            subject[:, j] = np.array(pool["subject"])[variant[:, j, 0]]
            pain[:, j] = np.array([pain_names.index(x) for x in pool["pain"]])[variant[:, j, 1]]
            cta[:, j] = np.array([CTAS.index(x) for x in pool["cta"]])[variant[:, j, 2]]
            angle[:, j] = np.array([angle_names.index(x) for x in pool["angle"]])[variant[:, j, 3]]
            email_words = np.array(pool["words"])[variant[:, j, 4]]
            words[:, j] = np.where(channels[:, j] == "email", email_words, words[:, j])
    if cfg.constant_components and "timing" in cfg.constant_components:
        hiring = np.zeros(n, dtype=np.bool_)
        funded_days_before = np.full(n, np.nan)
        role_days_before = np.full(n, 10 * 365.0)
        leads.hiring, leads.funded_days_before, leads.role_days_before = (
            hiring, funded_days_before, role_days_before)

    # --- hazard ---
    pl = PLANTED
    who = np.ones(n)
    who *= np.where(np.isin(title, [TITLES.index(t) for t in pl["title"]["raw"]]), eff.title, 1.0)
    who *= np.where(industry == INDUSTRIES.index(pl["industry"]["value"]), eff.industry, 1.0)
    emp = np.nan_to_num(employees, nan=-1)
    who *= np.where((emp >= pl["size"]["min"]) & (emp <= pl["size"]["max"]), eff.size, 1.0)
    who *= np.where(np.nan_to_num(funded_days_before, nan=1e9) <= pl["funded"]["within_months"] * 30.4,
                    eff.funded, 1.0)
    who *= np.where(hiring, eff.hiring, 1.0)
    who *= np.where(np.nan_to_num(role_days_before, nan=1e9) <= pl["new_role"]["within_months"] * 30.4,
                    eff.new_role, 1.0)
    who *= np.where(channels[:, 0] == pl["first_channel"]["value"], eff.first_channel, 1.0)

    text_channel = (channels == "email") | (channels == "linkedin") | (channels == "sms")
    what = np.ones((n, k))
    what *= np.where((channels == "email") & (subject == SUBJECTS.index(pl["subject"]["value"])), eff.subject, 1.0)
    what *= np.where(text_channel & (pain == list(PAIN_POINTS).index(pl["pain_point"]["value"])),
                     eff.pain_point, 1.0)
    what *= np.where(text_channel & (cta == CTAS.index(pl["cta"]["value"])), eff.cta, 1.0)
    what *= np.where(text_channel & (angle == list(ANGLES).index(pl["angle"]["value"])), eff.angle, 1.0)
    what *= np.where((channels == "email") & (words >= pl["email_length"]["min_words"])
                     & (words <= pl["email_length"]["max_words"]), eff.email_length, 1.0)
    what *= np.where(text_channel & recent_news, eff.recent_news, 1.0)

    when = np.ones((n, k))
    when *= np.where(weekday == 1, eff.day, 1.0)  # Tuesday, Monday = 0
    when *= np.where(hour == pl["hour"]["value"], eff.hour, 1.0)
    when[:, pl["position"]["value"] - 1] *= eff.position
    email_before = np.cumsum(channels == "email", axis=1) - (channels == "email") > 0
    how = np.where((channels == "voice") & email_before, eff.voice_after_email, 1.0)

    mult = who[:, None] * what * when * how
    base = cfg.base_touch_rate / float(mult.mean())
    hazard = np.minimum(base * mult, 0.9)

    # --- outcomes ---
    tz_cache: dict[tuple[str, int], int] = {}

    def offset_minutes(z: str, day: int) -> int:
        got = tz_cache.get((z, day))
        if got is None:
            when_local = dt.datetime(1970, 1, 1) + dt.timedelta(days=int(day), hours=12)
            off = ZoneInfo(z).utcoffset(when_local)
            got = int(off.total_seconds() // 60) if off is not None else 0
            tz_cache[(z, day)] = got
        return got

    local_minutes = local_day * 1440 + hour * 60 + minute
    offsets = np.array([[offset_minutes(zone[i], int(local_day[i, j])) for j in range(k)] for i in range(n)])
    utc_minutes = local_minutes - offsets
    anchor_minutes = anchor_day * 1440 + cfg.anchor.hour * 60 + cfg.anchor.minute
    delivered = (utc_minutes <= anchor_minutes) & ~never_touched[:, None]
    booked = rng.random((n, k)) < hazard
    unsub = rng.random((n, k)) < 0.012
    bounce_first_email = (channels == "email") & (rng.random((n, k)) < 0.02)

    sim: dict[str, Any] = {
        "channels": channels, "local_day": local_day, "hour": hour, "minute": minute,
        "utc_minutes": utc_minutes, "subject": subject, "pain": pain, "cta": cta, "angle": angle,
        "words": words, "recent_news": recent_news, "mutual": mutual, "industry_specific": industry_specific,
        "delivered": delivered, "booked": booked, "unsub": unsub, "bounce": bounce_first_email,
        "anchor_minutes": anchor_minutes,
    }
    return leads, sim


def _epoch_minutes_to_dt(minutes: float) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=float(minutes))


def _write_client(conn: psycopg.Connection[Any], rng: np.random.Generator, id_rng: np.random.Generator,
                  cfg: GeneratorConfig, index: int) -> ClientSummary:
    say = cfg.progress or (lambda _msg: None)
    client_id = _uuid(id_rng)
    client_zone = CLIENT_ZONES[index % len(CLIENT_ZONES)]
    name = f"{cfg.client_name_prefix} {index + 1}"
    conn.execute(
        "insert into public.clients (id, name, timezone, icp_industries, icp_company_sizes, icp_locations, icp_titles)"
        " values (%s, %s, %s, %s, %s, %s, %s)",
        (client_id, name, client_zone, ["Dental", "Legal", "Accounting"], ["11-50", "51-200"], ["US", "UK", "CA"],
         ["CEO", "Owner", "VP Marketing"]),
    )
    campaign_zones: list[str | None] = ["America/Chicago", None]
    campaign_ids = [_uuid(id_rng) for _ in campaign_zones]
    for cid, cz, nm in zip(campaign_ids, campaign_zones, ["Outbound A", "Outbound B"]):
        conn.execute(
            "insert into public.campaigns (id, client_id, name, timezone, allocation_email, allocation_sms,"
            " allocation_linkedin, allocation_voice, allocation_mail) values (%s,%s,%s,%s,50,10,30,10,0)",
            (cid, client_id, nm, cz),
        )

    n = cfg.leads_per_client
    leads, sim = _simulate_client(rng, id_rng, cfg, client_zone, campaign_zones, n)
    channels = sim["channels"]
    k = channels.shape[1]
    anchor_minutes = sim["anchor_minutes"]

    # Walk each lead's sequence: stop at a booking, an unsubscribe, a bounce or the anchor.
    status: list[str] = []
    converted_at: list[dt.datetime | None] = []
    via_activity: list[bool] = []
    n_sent = np.zeros(n, dtype=np.int64)
    booking_minutes = np.full(n, np.nan)
    booking_channel: list[str | None] = [None] * n
    path_draw = rng.random(n)
    reply_delay = rng.uniform(30, 72 * 60, size=n)
    end_draw = rng.random(n)
    converted = failed = opened = 0
    for i in range(n):
        st = "in_sequence"
        for j in range(k):
            if not sim["delivered"][i, j]:
                break
            n_sent[i] = j + 1
            if sim["booked"][i, j]:
                at = sim["utc_minutes"][i, j] + reply_delay[i]
                if at <= anchor_minutes:
                    st = "converted"
                    booking_minutes[i] = at
                    booking_channel[i] = str(channels[i, j])
                break
            if sim["bounce"][i, j] and j == 0:
                st = "bounced"
                break
            if sim["unsub"][i, j]:
                st = "unsubscribed"
                break
        else:
            if n_sent[i] == k:
                d = end_draw[i]
                st = "not_interested" if d < 0.45 else "dead" if d < 0.9 else "unsubscribed"
        if leads.never_touched[i]:
            st = "new" if path_draw[i] < 0.5 else "enriched"
        via = st == "converted" and path_draw[i] < 0.4
        via_activity.append(via)
        if st == "converted":
            converted += 1
            converted_at.append(None if via else _epoch_minutes_to_dt(booking_minutes[i]))
            status.append("in_sequence" if via else "converted")
        else:
            failed += st in ("bounced", "unsubscribed", "not_interested", "dead")
            opened += st not in ("bounced", "unsubscribed", "not_interested", "dead")
            converted_at.append(None)
            status.append(st)

    def lead_rows() -> Iterator[Sequence[object]]:
        for i in range(n):
            first_touch_day = int(leads.start_day[i])
            first_touch = dt.date(1970, 1, 1) + dt.timedelta(days=first_touch_day)
            fn = FIRST_NAMES[i % len(FIRST_NAMES)]
            ln = LAST_NAMES[(i // 10) % len(LAST_NAMES)]
            company = f"Company {index + 1}-{i}"
            funded = (None if np.isnan(leads.funded_days_before[i])
                      else first_touch - dt.timedelta(days=int(leads.funded_days_before[i])))
            role = (None if np.isnan(leads.role_days_before[i])
                    else first_touch - dt.timedelta(days=int(leads.role_days_before[i])))
            emp = None if np.isnan(leads.employees[i]) else int(leads.employees[i])
            created = _epoch_minutes_to_dt((first_touch_day - 3) * 1440 + 600)
            linkedin = f"https://linkedin.example/in/{fn.lower()}{i}" if i % 3 else None
            personal = None if i % 5 else f"{fn.lower()}{i}@mail.example"
            email_ok, phone_ok = bool(i % 4), bool(i % 7 == 0)
            if "data_quality" in cfg.constant_components:
                linkedin = f"https://linkedin.example/in/{fn.lower()}{i}"
                personal, email_ok, phone_ok = None, True, False
            yield (
                leads.ids[i], client_id, campaign_ids[int(leads.campaign[i])],
                f"{fn.lower()}.{ln.lower()}{i}@company{index + 1}-{i}.example", f"+1555{i:07d}"[:12],
                fn, ln, TITLES[int(leads.title[i])], company, f"company{index + 1}-{i}.example",
                linkedin, personal, email_ok, phone_ok, INDUSTRIES[int(leads.industry[i])], emp,
                COUNTRIES[int(leads.country[i])], bool(leads.hiring[i]), funded, role,
                1 if status[i] == "bounced" else 0, status[i], leads.lead_zone[i], converted_at[i],
                created, created, _epoch_minutes_to_dt(anchor_minutes - 60) if leads.deleted[i] else None,
            )

    lead_cols = [
        "id", "client_id", "campaign_id", "email", "phone", "first_name", "last_name", "title", "company",
        "domain", "linkedin_url", "personal_email", "email_verified", "phone_verified", "organization_industry",
        "organization_employee_count", "organization_country", "organization_is_hiring",
        "organization_latest_funding_date", "employment_start_date", "bounce_count", "status", "timezone",
        "converted_at", "created_at", "updated_at", "deleted_at",
    ]
    t0 = time.perf_counter()
    _copy_rows(conn, "leads", lead_cols, lead_rows())
    deleted = int(np.count_nonzero(leads.deleted))
    say(f"  {name}: {n:,} leads copied ({soft_deleted_note(deleted)}{time.perf_counter() - t0:.1f} s)")
    if cfg.uncontacted_leads:
        # A bounced import: leads never contacted (no outbound touch), one title.
        created_at = _epoch_minutes_to_dt(anchor_minutes - 30 * 1440)

        def uncontacted_rows() -> Iterator[Sequence[object]]:
            for u in range(cfg.uncontacted_leads):
                yield (
                    _uuid(id_rng), client_id, campaign_ids[0], f"bounced{u}@import{index + 1}.example", None,
                    "Pat", "Import", UNCONTACTED_TITLE, f"Imported {index + 1}-{u}", None, None, None, False,
                    False, INDUSTRIES[u % len(INDUSTRIES)], 20, "US", False, None, None, 1, "bounced", None,
                    None, created_at, created_at, None,
                )

        _copy_rows(conn, "leads", lead_cols, uncontacted_rows())

    snapshot_draw = rng.random((n, k))
    variant_draw = rng.random((n, k))
    junk_draw = rng.random((n, k))
    junk_kind = rng.integers(0, 6, size=(n, k))
    opened_draw = rng.random((n, k))
    host_action = rng.random(n) < 0.6
    pain_names = list(PAIN_POINTS)
    angle_names = list(ANGLES)

    def activity_rows() -> Iterator[Sequence[object]]:
        for i in range(n):
            fn = FIRST_NAMES[i % len(FIRST_NAMES)]
            company = f"Company {index + 1}-{i}"
            camp = campaign_ids[int(leads.campaign[i])]
            for j in range(int(n_sent[i])):
                ch = str(channels[i, j])
                at = _epoch_minutes_to_dt(sim["utc_minutes"][i, j])
                pain = pain_names[int(sim["pain"][i, j])]
                cta = CTAS[int(sim["cta"][i, j])]
                angle = angle_names[int(sim["angle"][i, j])]
                words = int(sim["words"][i, j])
                template = SUBJECTS[int(sim["subject"][i, j])] if ch in ("email", "linkedin") else None
                subject = _fill(template, fn, company, pain) if template else None
                body = _body(pain, angle, cta, words) if ch != "voice" else None
                text = _fill(body, fn, company, pain) if body else None
                if cfg.unique_bodies and text:
                    # Rendered per lead, as engines that write each message send them.
                    text = f"{text} We last spoke about {company} on {at:%d %B} (note {j + 1})."
                    body = text
                perso = {
                    "company_mention": bool(template and "{company}" in template) or ch != "voice",
                    "recent_news": bool(sim["recent_news"][i, j]),
                    "mutual_connection": bool(sim["mutual"][i, j]),
                    "industry_specific": bool(sim["industry_specific"][i, j]),
                }
                snapshot: object
                if snapshot_draw[i, j] >= cfg.snapshot_share:
                    snapshot = None
                elif variant_draw[i, j] < 0.3:
                    snapshot = {
                        "subject": template, "body": body, "pain_points_used": [pain], "cta_used": cta,
                        "angle": angle, "touch_number": j + 1,
                        **{f"has_{key}": value for key, value in perso.items()},
                    }
                else:
                    snapshot = {
                        "subject": template, "body": body, "pain_points": [pain], "cta": cta, "angle": angle,
                        "word_count": words if ch != "sms" else len((text or "").split()),
                        "char_count": len(text or ""), "personalization": perso,
                        "personalization_level": sum(perso.values()), "touch_number": j + 1,
                    }
                channel_value = ch
                if junk_draw[i, j] < cfg.junk_share:
                    kind = int(junk_kind[i, j])
                    snapshot = [
                        "just a string", [1, 2, 3], {"subject": 42, "word_count": "many", "pain_points": "scaling"},
                        {"subject": "", "body": ""}, {"subject": "x" * 200_000, "body": "y"}, snapshot,
                    ][kind]
                    if kind == 5:
                        channel_value = "mail"
                metadata = {"template_id": f"t{int(sim['subject'][i, j])}", "pain_point": pain, "cta": cta,
                            "angle": angle, "engine": "generator"}
                action = "sent" if host_action[i] else SEED_ACTION[ch]
                yield (
                    _uuid(id_rng), client_id, camp, leads.ids[i], channel_value, action, j + 1, subject,
                    (text or "")[:200] or None, json.dumps(metadata),
                    None if snapshot is None else json.dumps(snapshot), at,
                )
                if ch == "email" and opened_draw[i, j] < cfg.opened_share:
                    yield (_uuid(id_rng), client_id, camp, leads.ids[i], "email", "opened", j + 1, None, None, None,
                           None, _epoch_minutes_to_dt(sim["utc_minutes"][i, j] + 90))
            if via_activity[i]:
                yield (_uuid(id_rng), client_id, camp, leads.ids[i], booking_channel[i] or "email", "meeting_booked",
                       None, None, None, json.dumps({"source": "calendar"}), None,
                       _epoch_minutes_to_dt(booking_minutes[i]))

    act_cols = ["id", "client_id", "campaign_id", "lead_id", "channel", "action", "sequence_step", "subject",
                "content_preview", "metadata", "content_snapshot", "created_at"]
    t0 = time.perf_counter()
    activities = _copy_rows(conn, "activities", act_cols, activity_rows())
    say(f"  {name}: {activities:,} activities copied ({time.perf_counter() - t0:.1f} s)")
    t0 = time.perf_counter()
    row = conn.execute("select ci_private.backfill_converting_touches(%s)", (client_id,)).fetchone()
    changed = int(row[0]) if row else 0
    # The backfill returns the marks it changed; the triggers set most of them while the rows were copied.
    row = conn.execute("select count(*) from public.activities where client_id = %s and led_to_booking",
                       (client_id,)).fetchone()
    marks = int(row[0]) if row else 0
    conn.execute("analyze public.leads")
    conn.execute("analyze public.activities")
    say(f"  {name}: {marks:,} converting touches marked ({changed:,} of them by the backfill; "
        f"{time.perf_counter() - t0:.1f} s)")
    return ClientSummary(client_id, name, n + cfg.uncontacted_leads, activities, converted,
                         failed + cfg.uncontacted_leads, opened, marks, deleted)


def soft_deleted_note(deleted: int) -> str:
    """'21 soft-deleted, ignored; ' for a progress line (empty for none): the leads the layer will not count."""
    return f"{deleted:,} soft-deleted, ignored; " if deleted else ""


def planned_client_ids(cfg: GeneratorConfig) -> list[uuid.UUID]:
    """The ids generate() will give the clients (only meaningful with a fixed id_salt)."""
    if cfg.id_salt is None:
        raise ValueError("client ids are random unless id_salt is set")
    return [_uuid(np.random.default_rng([cfg.seed, index, cfg.id_salt])) for index in range(cfg.clients)]


def generate(conn: psycopg.Connection[Any], cfg: GeneratorConfig) -> GenerationResult:
    """Write cfg.clients clients of history; returns their ids and counts."""
    t0 = time.perf_counter()
    salt = cfg.id_salt if cfg.id_salt is not None else int.from_bytes(os.urandom(8), "little")
    summaries = []
    for index in range(cfg.clients):
        # One stream per client: a client's data does not depend on how many are generated.
        client_rng = np.random.default_rng([cfg.seed, index])
        id_rng = np.random.default_rng([cfg.seed, index, salt])
        summaries.append(_write_client(conn, client_rng, id_rng, cfg, index))
    return GenerationResult([s.client_id for s in summaries], summaries, time.perf_counter() - t0)


def main(argv: Sequence[str] | None = None) -> int:
    """ci-generate: load generated history into a database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dsn", help="database URL (default: $DATABASE_URL)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--leads-per-client", type=int, default=2000)
    parser.add_argument("--no-effects", action="store_true", help="plant nothing (null data)")
    parser.add_argument("--open-share", type=float, default=0.15)
    parser.add_argument("--junk-share", type=float, default=0.0)
    parser.add_argument("--name-prefix", default="Generated client")
    args = parser.parse_args(argv)
    dsn = args.dsn or os.environ.get("DATABASE_URL")
    if not dsn:
        parser.error("--dsn or DATABASE_URL is required")
    cfg = GeneratorConfig(
        seed=args.seed, clients=args.clients, leads_per_client=args.leads_per_client,
        effects=Effects.none() if args.no_effects else Effects.planted(), open_share=args.open_share,
        junk_share=args.junk_share, client_name_prefix=args.name_prefix,
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        result = generate(conn, replace(cfg))
    print(f"generated {len(result.client_ids)} clients, {result.leads:,} leads, "
          f"{result.activities:,} activities in {result.seconds:.1f} s")
    for c in result.clients:
        print(f"  {c.name} ({c.client_id}): {c.leads:,} leads ({c.deleted:,} of them soft-deleted, ignored), "
              f"{c.converted:,} converted, {c.failed:,} failed, "
              f"{c.open:,} open, {c.activities:,} activities, {c.marks:,} converting touches marked")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
