"""The thin adapter between PL/Python and ci_stats.weights.

ci_private.fit_als_weights (created only where plpython3u exists) is

    import ci_stats.plpy_adapter as adapter
    return adapter.fit_als_weights(plpy, p_data_quality, ..., p_fold_counts, ...)

It turns the SQL arrays (Python lists, jsonb as text) into numpy arrays, calls
weights.decide_weights and returns the decision as JSON text. Any failure is
reported through plpy.warning and returned as a 'not applied' decision, so that
a refresh never fails because of the fit.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ci_stats.weights import DEFAULT_WEIGHTS, FitConfig, decide_weights

__all__ = ["PlpyLike", "fit_als_weights"]


class PlpyLike(Protocol):
    """What the adapter uses of PL/Python's plpy module."""

    def warning(self, msg: str) -> None: ...


def _load_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _column(values: Sequence[int | float | None] | None, name: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    if values is None:
        raise ValueError(f"{name} is null")
    # numpy reads None as NaN in a float array; decide_weights rejects NaN.
    return np.asarray(values, dtype=np.float64)


def fit_als_weights(
    plpy: PlpyLike,
    data_quality: Sequence[int | None] | None,
    authority: Sequence[int | None] | None,
    company_fit: Sequence[int | None] | None,
    timing: Sequence[int | None] | None,
    risk: Sequence[int | None] | None,
    converted: Sequence[int | None] | None,
    fold_counts: Sequence[Sequence[int | None]] | None,
    current_weights: str | None,
    confidence: float | None,
    options: str | None,
) -> str:
    """Arguments as PL/Python passes them -> the decision as JSON text."""
    current = _load_json(current_weights)
    if not isinstance(current, dict):
        current = dict(DEFAULT_WEIGHTS)
    opts = _load_json(options)
    config = FitConfig.from_mapping(opts if isinstance(opts, dict) else None)
    try:
        if not data_quality:
            # No learning rows at all (a client without outcomes): nothing to fit.
            x = np.zeros((0, 4))
            counts = np.zeros((0, config.folds))
        else:
            x = np.column_stack([
                _column(data_quality, "data_quality"), _column(authority, "authority"),
                _column(company_fit, "company_fit"), _column(timing, "timing"),
            ])
            if fold_counts is None:
                raise ValueError("fold_counts is null")
            counts = np.asarray(fold_counts, dtype=np.float64)
        decision = decide_weights(
            x, _column(risk or [], "risk"), _column(converted or [], "converted"), current,
            confidence=float(confidence) if confidence is not None else float("nan"),
            counts=counts, config=config,
        )
        result = decision.to_json()
    except Exception as exc:  # noqa: BLE001 - a refresh must never fail because of the fit
        plpy.warning(f"fit_als_weights: {type(exc).__name__}: {exc}")
        result = {
            "status": "not_fitted", "applied": False, "reason": f"fit failed: {type(exc).__name__}: {exc}",
            "old_weights": current, "new_weights": current, "warnings": [],
        }
    return json.dumps(result)
