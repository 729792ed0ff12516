"""`ci fit-weights`: the ALS weight fit outside the database, for servers without plpython3u.

It runs the very module the in-database fit runs (``ci_stats.plpy_adapter.fit_als_weights``
over ``ci_stats.weights``) on the very input it gets (``ci_private.als_learning_rows``,
the weights in force, ``ci_private.who_confidence`` of the sample, the same minimum of 30
outcomes and 10 conversions), so that on the same data it proposes the same weights; then
it applies them through ``public.apply_learned_weights`` (which validates them, stores them
at 4 decimals and rescores the client's leads, or queues a client of more than 5,000 leads for
the rescore job), with the decision as the metrics.

Needs a connection that may read ``ci_private`` (the database owner or service_role).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ci_sidecar.client import CiClient, Id, WeightsResult
from ci_stats import plpy_adapter

__all__ = ["FitOutcome", "fit_weights", "learning_decision"]

MIN_OUTCOMES = 30
MIN_CONVERSIONS = 10


class _Warnings:
    """Stands in for plpy: collects the adapter's warnings."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def warning(self, msg: str) -> None:
        self.messages.append(msg)


@dataclass(frozen=True)
class FitOutcome:
    """The decision of one client's fit and, when applied, what apply_learned_weights did."""

    client_id: str
    decision: dict[str, Any]
    applied: WeightsResult | None
    warnings: list[str] = field(default_factory=list)

    @property
    def proposed(self) -> bool:
        return bool(self.decision.get("applied"))

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "decision": self.decision,
            "applied": None if self.applied is None else self.applied.raw,
            "warnings": self.warnings,
        }


def learning_decision(ci: CiClient, client_id: Id) -> tuple[dict[str, Any], list[str]]:
    """The fit's decision for a client, computed here exactly as the WHO detector computes it in SQL."""
    ci.client_info(client_id)  # access check; unknown client -> NotFound
    rows = ci.execute(
        "select data_quality, authority, company_fit, timing, risk, converted, fold_counts "
        "from ci_private.als_learning_rows(%s::uuid)", (str(client_id),)
    )
    current = ci.scalar(
        "select ci_private.als_weights_in_force(c.als_learned_weights) from public.clients as c where c.id = %s::uuid",
        (str(client_id),),
    )
    n = sum(int(sum(r[6] or [])) for r in rows)
    conversions = sum(int(sum(r[6] or [])) for r in rows if r[5] == 1)
    if n < MIN_OUTCOMES or conversions < MIN_CONVERSIONS:
        return {
            "status": "not_fitted", "applied": False, "n": n, "conversions": conversions,
            "reason": f"insufficient data: {n} outcomes (need {MIN_OUTCOMES}) and {conversions} conversions "
                      f"(need {MIN_CONVERSIONS})",
            "old_weights": current, "new_weights": current,
        }, []
    confidence = float(ci.scalar("select ci_private.who_confidence(%s::bigint)", (n,)))
    plpy = _Warnings()
    text = plpy_adapter.fit_als_weights(
        plpy,
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
        [r[4] for r in rows], [r[5] for r in rows], [list(r[6]) for r in rows],
        json.dumps(current), confidence, "{}",
    )
    decision: dict[str, Any] = json.loads(text)
    new = decision.get("new_weights")
    if decision.get("applied") and isinstance(new, dict):
        # At the precision the scorer uses, as the WHO detector records them.
        valid = ci.scalar("select ci_private.als_valid_weights(%s::jsonb)", (json.dumps(new),))
        if valid:
            decision["new_weights"] = ci.scalar(
                "select ci_private.als_quantize_weights(%s::jsonb)", (json.dumps(new),))
        else:
            decision["applied"] = False
    else:
        decision["applied"] = False
    decision["source"] = "sidecar"
    return decision, plpy.messages


def fit_weights(ci: CiClient, client_id: Id, *, apply: bool = True) -> FitOutcome:
    """Fit one client's weights here; apply them through apply_learned_weights when the checks pass."""
    decision, warnings = learning_decision(ci, client_id)
    applied: WeightsResult | None = None
    if apply and decision.get("applied"):
        # apply_learned_weights accepts the fit report's own keys only (it refuses unknown
        # ones); which components were held is kept in the returned decision, not sent.
        metrics = {k: v for k, v in decision.items() if k != "held_components"}
        applied = ci.apply_learned_weights(client_id, decision["new_weights"], metrics)
    return FitOutcome(str(client_id), decision, applied, warnings)
