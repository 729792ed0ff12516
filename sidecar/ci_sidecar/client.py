"""A typed client of the layer's public API (contract section 6).

One method per public function, results as dataclasses (each keeps the JSON it
came from in ``raw``), database errors raised as the sidecar's own errors by
SQLSTATE (``ci_sidecar.errors``). In the style of pgmq's Python client::

    with CiClient.connect("postgresql://...") as ci:
        patterns = ci.get_conversion_patterns(client_id)
        if patterns.who and not patterns.who.stale:
            ...

The connection is autocommit: each call is its own transaction, as over RPC.
``as_user`` makes the session act as a signed-in user (role ``authenticated``
with the JWT ``sub`` claim), the way PostgREST does, so that the database's
access checks apply; ``as_role`` acts as ``service_role`` or ``anon``.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

import psycopg
from psycopg.types.json import Jsonb

from ci_sidecar.errors import CiError, ConnectionFailed, NoPatterns, from_psycopg

__all__ = [
    "PATTERN_TYPES",
    "ChannelAllocation",
    "CiClient",
    "ClientInfo",
    "ComponentExplanation",
    "HistoryEntry",
    "Pattern",
    "PatternSet",
    "Reconciliation",
    "RefreshAll",
    "RefreshSummary",
    "ScoreExplanation",
    "StoredAgentContext",
    "WeightsResult",
    "WhoSegment",
    "parse_time",
]

PATTERN_TYPES: tuple[str, str, str, str] = ("who", "what", "when", "how")
Id = uuid.UUID | str
Conn = psycopg.Connection[tuple[Any, ...]]


def parse_time(value: Any) -> dt.datetime | None:
    """A timestamp from JSON (ISO text) or the driver (datetime); None otherwise."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _float(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Pattern:
    """One pattern (who, what, when or how) as stored or as detected."""

    type: str
    sample_size: int
    confidence: float
    computed_at: dt.datetime | None
    valid_until: dt.datetime | None
    stale: bool
    insufficient_data: bool
    health_warnings: list[str]
    data: dict[str, Any]

    @classmethod
    def from_json(cls, kind: str, raw: Mapping[str, Any]) -> Pattern:
        warnings = raw.get("health_warnings")
        return cls(
            type=str(raw.get("type") or kind),
            sample_size=_int(raw.get("sample_size")),
            confidence=_float(raw.get("confidence")),
            computed_at=parse_time(raw.get("computed_at")),
            valid_until=parse_time(raw.get("valid_until")),
            stale=bool(raw.get("stale", False)),
            insufficient_data=bool(raw.get("insufficient_data")) or raw.get("status") == "insufficient_data",
            health_warnings=[str(w) for w in warnings] if isinstance(warnings, list) else [],
            data=dict(raw),
        )


@dataclass(frozen=True)
class PatternSet:
    """get_conversion_patterns: the four stored patterns, None where none."""

    who: Pattern | None
    what: Pattern | None
    when: Pattern | None
    how: Pattern | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> PatternSet:
        data = _dict(raw)
        parts = {k: Pattern.from_json(k, data[k]) if isinstance(data.get(k), Mapping) else None
                 for k in PATTERN_TYPES}
        return cls(parts["who"], parts["what"], parts["when"], parts["how"], data)

    def get(self, kind: str) -> Pattern | None:
        return {"who": self.who, "what": self.what, "when": self.when, "how": self.how}.get(kind)

    @property
    def empty(self) -> bool:
        return not any((self.who, self.what, self.when, self.how))


@dataclass(frozen=True)
class HistoryEntry:
    """One row of get_pattern_history."""

    id: int
    pattern_type: str
    sample_size: int
    confidence: float
    computed_at: dt.datetime | None
    patterns: dict[str, Any]


@dataclass(frozen=True)
class RefreshSummary:
    """refresh_conversion_patterns' summary."""

    client_id: str
    status: str
    computed_at: dt.datetime | None
    weights: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)

    @property
    def weights_applied(self) -> bool:
        return bool(self.weights.get("applied"))


@dataclass(frozen=True)
class RefreshAll:
    """refresh_all_conversion_patterns' result."""

    ok: int
    skipped: int
    failed: int
    clients: list[dict[str, Any]]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ChannelAllocation:
    """recommended_channel_allocation: integer shares summing to 100."""

    tier: str
    source: str
    allocation: dict[str, int]
    basis: dict[str, float]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class WeightsResult:
    """apply_learned_weights' result."""

    applied: bool
    weights: dict[str, float]
    previous_weights: dict[str, float]
    rescored: int
    """Leads rescored in the call (a client of at most rescore_inline_max leads, 5000)."""
    rescore_queued: bool
    """A larger client: its leads wait for ci_jobs.rescore_pending (every 5 minutes) or its next refresh."""
    reason: str | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Reconciliation:
    """reconcile_conversions' result: what it corrected."""

    raw: dict[str, Any]


@dataclass(frozen=True)
class ComponentExplanation:
    """One component of a lead's score."""

    component: str
    points: int
    max: int
    rules: list[tuple[str, int]]
    capped: bool
    weight: float
    contribution: float


@dataclass(frozen=True)
class WhoSegment:
    """A WHO segment the lead falls in, with its figures from the stored pattern."""

    dimension: str
    value: str
    conversion_rate: float | None
    smoothed_rate: float | None
    ci_low: float | None
    ci_high: float | None
    lift: float | None
    significance: str
    sample: int
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ScoreExplanation:
    """explain_lead_score: components, rules, weights, contributions, WHO segments."""

    lead_id: str
    client_id: str
    score: int
    tier: str
    stored_score: int | None
    weights: dict[str, float]
    weights_source: str
    components: list[ComponentExplanation]
    who_segments: list[WhoSegment]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class StoredAgentContext:
    """get_agent_context: the latest rendered context of a client."""

    client_id: str
    rendered_at: dt.datetime | None
    stale: bool
    source_patterns: dict[str, Any]
    context: dict[str, Any]
    prompts: dict[str, str]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ClientInfo:
    """A client row (the owner's view; used by watch and report)."""

    id: str
    name: str
    timezone: str | None


def _opt_float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


class CiClient:
    """The public API over one psycopg connection."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    # -- connection ------------------------------------------------------------------------------

    @classmethod
    def connect(cls, dsn: str | None, *, as_user: Id | None = None, as_role: str | None = None,
                connect_timeout: int = 10) -> CiClient:
        """Connect (autocommit); optionally act as a signed-in user or an API role."""
        if not dsn:
            raise ConnectionFailed("no database URL: pass --dsn or set DATABASE_URL")
        try:
            conn: Conn = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout)
        except psycopg.Error as exc:
            raise from_psycopg(exc) from None
        client = cls(conn)
        try:
            if as_user is not None:
                client.act_as_user(as_user)
            elif as_role is not None:
                client.act_as_role(as_role)
        except CiError:
            conn.close()
            raise
        return client

    def act_as_user(self, user_id: Id) -> None:
        """Act as PostgREST does for a signed-in user: role authenticated, JWT sub."""
        claims = json.dumps({"sub": str(uuid.UUID(str(user_id))), "role": "authenticated"})
        self.execute("select set_config('request.jwt.claims', %s, false)", (claims,))
        self.execute("set role authenticated")

    def act_as_role(self, role: str) -> None:
        """Act as an API role: service_role or anon."""
        if role not in ("service_role", "anon", "authenticated"):
            raise CiError(f"unknown role {role!r}: expected service_role, anon or authenticated")
        self.execute("select set_config('request.jwt.claims', %s, false)", (json.dumps({"role": role}),))
        self.execute(f"set role {role}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------------

    def execute(self, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        try:
            cur = self.conn.execute(query, params)
            return cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            raise from_psycopg(exc) from None

    def scalar(self, query: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.execute(query, params)
        return rows[0][0] if rows else None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction for several calls (the report reads a temporary relation)."""
        try:
            with self.conn.transaction():
                yield
        except psycopg.Error as exc:
            raise from_psycopg(exc) from None

    # -- reads -----------------------------------------------------------------------------------

    def get_conversion_patterns(self, client_id: Id) -> PatternSet:
        """The four stored patterns of a client (None where never computed)."""
        return PatternSet.from_json(self.scalar("select public.get_conversion_patterns(%s::uuid)", (str(client_id),)))

    def require_patterns(self, client_id: Id) -> PatternSet:
        """get_conversion_patterns, raising NoPatterns when the client has none stored."""
        patterns = self.get_conversion_patterns(client_id)
        if patterns.empty:
            raise NoPatterns(f"client {client_id} has no stored patterns yet: run `ci refresh {client_id}` first")
        return patterns

    def get_pattern_history(self, client_id: Id, pattern_type: str | None = None, limit: int = 52
                            ) -> list[HistoryEntry]:
        """History rows of a client, newest first."""
        rows = self.scalar("select public.get_pattern_history(%s::uuid, %s, %s)",
                            (str(client_id), pattern_type, limit))
        out: list[HistoryEntry] = []
        for r in rows if isinstance(rows, list) else []:
            out.append(HistoryEntry(
                id=_int(r.get("id")), pattern_type=str(r.get("pattern_type")), sample_size=_int(r.get("sample_size")),
                confidence=_float(r.get("confidence")), computed_at=parse_time(r.get("computed_at")),
                patterns=_dict(r.get("patterns")),
            ))
        return out

    def _detect(self, kind: str, client_id: Id) -> Pattern:
        raw = self.scalar(f"select public.detect_{kind}_patterns(%s::uuid)", (str(client_id),))
        return Pattern.from_json(kind, _dict(raw))

    def detect_who_patterns(self, client_id: Id) -> Pattern:
        """Compute the WHO pattern now; writes nothing."""
        return self._detect("who", client_id)

    def detect_what_patterns(self, client_id: Id) -> Pattern:
        """Compute the WHAT pattern now; writes nothing."""
        return self._detect("what", client_id)

    def detect_when_patterns(self, client_id: Id) -> Pattern:
        """Compute the WHEN pattern now; writes nothing."""
        return self._detect("when", client_id)

    def detect_how_patterns(self, client_id: Id) -> Pattern:
        """Compute the HOW pattern now; writes nothing."""
        return self._detect("how", client_id)

    def detect(self, kind: str, client_id: Id) -> Pattern:
        """detect_<kind>_patterns for kind in who, what, when, how."""
        if kind not in PATTERN_TYPES:
            raise CiError(f"unknown pattern type {kind!r}: expected who, what, when or how")
        return self._detect(kind, client_id)

    def recommended_channel_allocation(self, client_id: Id, tier: str) -> ChannelAllocation:
        """Channel shares for a tier, summing to 100."""
        raw = _dict(self.scalar("select public.recommended_channel_allocation(%s::uuid, %s)", (str(client_id), tier)))
        return ChannelAllocation(
            tier=str(raw.get("tier")), source=str(raw.get("source")),
            allocation={str(k): _int(v) for k, v in _dict(raw.get("allocation")).items()},
            basis={str(k): _float(v) for k, v in _dict(raw.get("basis")).items()}, raw=raw,
        )

    def explain_lead_score(self, lead_id: Id) -> ScoreExplanation:
        """Each component of a lead's score, its rules, weight and contribution, and its WHO segments."""
        raw = _dict(self.scalar("select public.explain_lead_score(%s::uuid)", (str(lead_id),)))
        components = [
            ComponentExplanation(
                component=str(c.get("component")), points=_int(c.get("points")), max=_int(c.get("max")),
                rules=[(str(r.get("rule")), _int(r.get("points"))) for r in c.get("rules") or []
                       if isinstance(r, Mapping)],
                capped=bool(c.get("capped")), weight=_float(c.get("weight")),
                contribution=_float(c.get("contribution")),
            )
            for c in raw.get("components") or [] if isinstance(c, Mapping)
        ]
        segments = [
            WhoSegment(
                dimension=str(s.get("dimension")), value=str(s.get("value")),
                conversion_rate=_opt_float(s.get("conversion_rate")), smoothed_rate=_opt_float(s.get("smoothed_rate")),
                ci_low=_opt_float(s.get("ci_low")), ci_high=_opt_float(s.get("ci_high")),
                lift=_opt_float(s.get("adjusted_lift", s.get("lift"))),
                significance=str(s.get("significance") or "none"), sample=_int(s.get("sample")), raw=dict(s),
            )
            for s in raw.get("who_segments") or [] if isinstance(s, Mapping)
        ]
        stored = raw.get("stored_score")
        return ScoreExplanation(
            lead_id=str(raw.get("lead_id")), client_id=str(raw.get("client_id")), score=_int(raw.get("score")),
            tier=str(raw.get("tier")), stored_score=None if stored is None else _int(stored),
            weights={str(k): _float(v) for k, v in _dict(raw.get("weights")).items()},
            weights_source=str(raw.get("weights_source")), components=components, who_segments=segments, raw=raw,
        )

    def get_agent_context(self, client_id: Id) -> StoredAgentContext | None:
        """The latest context the sidecar rendered for a client, or None."""
        raw = self.scalar("select public.get_agent_context(%s::uuid)", (str(client_id),))
        if not isinstance(raw, Mapping):
            return None
        return StoredAgentContext(
            client_id=str(raw.get("client_id")), rendered_at=parse_time(raw.get("rendered_at")),
            stale=bool(raw.get("stale")), source_patterns=_dict(raw.get("source_patterns")),
            context=_dict(raw.get("context")),
            prompts={str(k): str(v) for k, v in _dict(raw.get("prompts")).items()}, raw=dict(raw),
        )

    # -- writes ----------------------------------------------------------------------------------

    def refresh_conversion_patterns(self, client_id: Id) -> RefreshSummary:
        """Compute and store all four patterns (and apply weights that pass the checks)."""
        raw = _dict(self.scalar("select public.refresh_conversion_patterns(%s::uuid)", (str(client_id),)))
        return RefreshSummary(
            client_id=str(raw.get("client_id")), status=str(raw.get("status")),
            computed_at=parse_time(raw.get("computed_at")), weights=_dict(raw.get("weights")), raw=raw,
        )

    def refresh_all_conversion_patterns(self) -> RefreshAll:
        """Every active client, each on its own (service_role and the database's roles)."""
        raw = _dict(self.scalar("select public.refresh_all_conversion_patterns()"))
        clients = [dict(c) for c in raw.get("clients") or [] if isinstance(c, Mapping)]
        return RefreshAll(ok=_int(raw.get("ok")), skipped=_int(raw.get("skipped")), failed=_int(raw.get("failed")),
                          clients=clients, raw=raw)

    def score_lead(self, lead_id: Id) -> int | None:
        """Rescore one lead now; its new score (None for a soft-deleted lead)."""
        value = self.scalar("select public.score_lead(%s::uuid)", (str(lead_id),))
        return None if value is None else int(value)

    def rescore_client_leads(self, client_id: Id) -> int:
        """Rescore every lead of a client; the count."""
        return _int(self.scalar("select public.rescore_client_leads(%s::uuid)", (str(client_id),)))

    def apply_learned_weights(self, client_id: Id, weights: Mapping[str, float],
                              metrics: Mapping[str, Any] | None = None) -> WeightsResult:
        """Validate and apply weights fitted outside the database; records the metrics."""
        raw = _dict(self.scalar("select public.apply_learned_weights(%s::uuid, %s, %s)",
                                 (str(client_id), Jsonb(dict(weights)), Jsonb(dict(metrics or {})))))
        return WeightsResult(
            applied=bool(raw.get("applied")),
            weights={str(k): _float(v) for k, v in _dict(raw.get("weights")).items()},
            previous_weights={str(k): _float(v) for k, v in _dict(raw.get("previous_weights")).items()},
            rescored=_int(raw.get("rescored")), rescore_queued=bool(raw.get("rescore_queued")),
            reason=raw.get("reason"), raw=raw,
        )

    def reconcile_conversions(self, client_id: Id) -> Reconciliation:
        """Re-derive the client's conversions and marks from history (service_role only)."""
        return Reconciliation(_dict(self.scalar("select public.reconcile_conversions(%s::uuid)", (str(client_id),))))

    # -- the owner's helpers (not API functions) -------------------------------------------------

    def client_info(self, client_id: Id) -> ClientInfo:
        """Name and zone of a client (after the API's own access check)."""
        self.execute("select ci_private.assert_client_access(%s::uuid, false)", (str(client_id),))
        rows = self.execute("select id::text, name, timezone from public.clients where id = %s::uuid",
                             (str(client_id),))
        if not rows:
            # The access check passed but the row is hidden from this role: report it by id.
            return ClientInfo(str(client_id), str(client_id), None)
        return ClientInfo(str(rows[0][0]), str(rows[0][1]), rows[0][2])

    def clients_with_patterns(self) -> list[ClientInfo]:
        """Every non-deleted client with at least one stored pattern, by name."""
        rows = self.execute(
            "select c.id::text, c.name, c.timezone from public.clients as c "
            "where c.deleted_at is null and exists (select 1 from public.conversion_patterns as p "
            "where p.client_id = c.id) order by c.name, c.id"
        )
        return [ClientInfo(str(r[0]), str(r[1]), r[2]) for r in rows]
