"""Learning the ALS component weights from outcomes.

The score (contract section 4) is, divided by 100,

    z = sum_j w_j * x_j + 0.15 * (1 - risk / 15),     x_j = component_j / max_j,

with the four weights w constrained to sum to 0.85, each in [0.05, 0.50]. The
seed's fit put ``X @ w`` straight into a sigmoid: with no intercept and no scale
a score of 0.5 had to mean a 62% booking rate, so it could not fit any real
rate. Here the model is

    P(booked) = sigmoid(b0 + s * z)

with a free intercept b0 and a scale s >= 0 (a higher score must not mean a
lower chance), fitted by SLSQP on the mean log loss plus an L2 penalty that
shrinks w toward the weights in force (a Gaussian prior of standard deviation
``prior_sd`` per weight, in units of the total log likelihood, so that it
matters less as the sample grows).

Before new weights are proposed:

* out-of-sample check: k-fold (deterministic folds) AUC of the score under the
  candidate weights vs under the weights in force, each fold fitting on the
  others; the mean gain must be at least ``min_gain`` and ``min_gain_z``
  standard errors (of the per-fold gains);
* the seed's health checks (spec 8.3): a sample under 50 or a confidence under
  0.5 blocks; a weight above 0.45 or below 0.08 is a warning;
* a bounded change: the candidate moves from the weights in force toward the
  fitted ones along the straight line, at most ``max_step`` for any weight.
  Both ends satisfy the constraints, so every point between them does: no
  re-projection is needed beyond removing rounding error. Repeated refreshes on
  the same data converge to the (penalised) optimum instead of jumping.

A component that does not vary in the client's data (every lead has the same
contact data, say) carries no information about its weight: it is held at its
weight in force, and the others are fitted under the same constraints (they
sum to 0.85 minus the held weights, each within the bounds); the decision
lists them in ``held_components``. Only when fewer than two components vary is
there nothing to fit.

Degenerate input (empty, all or no conversions, fewer than two varying
components, non-finite values, mismatched shapes) gives a decision with
``applied=False`` and the reason; nothing here raises on data.

Plain numpy + scipy, compatible with numpy 1.24 and scipy 1.10 (the database
server's Debian Python).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

__all__ = [
    "COMPONENT_MAX",
    "DEFAULT_WEIGHTS",
    "KEYS",
    "FitConfig",
    "LogisticFit",
    "WeightDecision",
    "bounded_step",
    "decide_weights",
    "fit_logistic",
    "project_weights",
    "weighted_auc",
]

FloatArray = npt.NDArray[np.float64]

KEYS: tuple[str, str, str, str] = ("data_quality", "authority", "company_fit", "timing")
COMPONENT_MAX: tuple[float, float, float, float] = (20.0, 25.0, 25.0, 15.0)
RISK_MAX = 15.0
RISK_ALLOWANCE = 0.15
DEFAULT_WEIGHTS: dict[str, float] = {"data_quality": 0.20, "authority": 0.25, "company_fit": 0.25, "timing": 0.15}
WEIGHT_SUM = 0.85
WEIGHT_LOW = 0.05
WEIGHT_HIGH = 0.50


@dataclass(frozen=True)
class FitConfig:
    """Knobs of the weight learning; the defaults are the layer's policy."""

    folds: int = 5
    prior_sd: float = 0.10
    max_step: float = 0.05
    min_gain: float = 0.003
    min_gain_z: float = 2.5
    min_sample: int = 50
    min_conversions: int = 10
    min_failures: int = 10
    min_confidence: float = 0.5
    warn_high: float = 0.45
    warn_low: float = 0.08
    max_scale: float = 200.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> FitConfig:
        """A config from a JSON object; unknown keys and bad values are ignored."""
        if not values:
            return cls()
        kwargs: dict[str, Any] = {}
        for name, default in cls().__dict__.items():
            raw = values.get(name)
            if raw is None or isinstance(raw, bool):
                continue
            try:
                value = type(default)(raw)
            except (TypeError, ValueError):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                continue
            kwargs[name] = value
        return cls(**kwargs)


@dataclass(frozen=True)
class LogisticFit:
    """P(booked) = sigmoid(intercept + scale * z(weights))."""

    weights: FloatArray
    intercept: float
    scale: float
    loss: float
    converged: bool
    message: str


@dataclass(frozen=True)
class WeightDecision:
    """What the weight learning decided and why (stored in the WHO pattern)."""

    applied: bool
    reason: str
    n: int
    conversions: int
    confidence: float
    folds: int
    old_weights: dict[str, float]
    new_weights: dict[str, float]
    candidate_weights: dict[str, float] | None = None
    fitted_weights: dict[str, float] | None = None
    auc_current: float | None = None
    auc_candidate: float | None = None
    auc_gain: float | None = None
    auc_gain_se: float | None = None
    fold_gains: list[float] = field(default_factory=list)
    intercept: float | None = None
    scale: float | None = None
    warnings: list[str] = field(default_factory=list)
    held_components: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (floats rounded for reading; weights kept exact)."""

        def r(x: float | None, digits: int = 4) -> float | None:
            return None if x is None else round(float(x), digits)

        return {
            "status": "fitted" if self.auc_current is not None else "not_fitted",
            "applied": self.applied,
            "reason": self.reason,
            "n": self.n,
            "conversions": self.conversions,
            "confidence": r(self.confidence, 2),
            "folds": self.folds,
            "auc_current": r(self.auc_current),
            "auc_candidate": r(self.auc_candidate),
            "auc_gain": r(self.auc_gain),
            "auc_gain_se": r(self.auc_gain_se),
            "fold_gains": [round(g, 4) for g in self.fold_gains],
            "old_weights": self.old_weights,
            "new_weights": self.new_weights,
            "candidate_weights": self.candidate_weights,
            "fitted_weights": self.fitted_weights,
            "intercept": r(self.intercept),
            "scale": r(self.scale),
            "warnings": list(self.warnings),
            "held_components": list(self.held_components),
            "method": "logistic(intercept + scale * score), L2 toward weights in force, SLSQP; k-fold AUC",
        }


# --- weights as vectors ------------------------------------------------------------------


def _as_dict(w: FloatArray) -> dict[str, float]:
    return {k: float(v) for k, v in zip(KEYS, w)}


def _weights_vector(weights: Mapping[str, Any] | Sequence[float] | None) -> FloatArray | None:
    """Four finite weights from a mapping (by KEYS) or a sequence; None if not."""
    if weights is None:
        return None
    try:
        if isinstance(weights, Mapping):
            values = [float(weights[k]) for k in KEYS]
        else:
            values = [float(v) for v in weights]
    except (KeyError, TypeError, ValueError):
        return None
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (4,) or not np.all(np.isfinite(arr)):
        return None
    return arr


def project_weights(v: FloatArray, held: npt.NDArray[np.bool_] | None = None) -> FloatArray:
    """Euclidean projection onto {sum = 0.85, 0.05 <= w <= 0.50} (bisection on the shift).

    With held (a mask), the held weights keep their values exactly and the others are
    projected onto {sum = 0.85 - held ones, bounds}."""
    v = np.asarray(v, dtype=np.float64)
    free = np.ones(v.shape, dtype=np.bool_) if held is None else ~np.asarray(held, dtype=np.bool_)
    if not np.any(free):
        return v.copy()
    target = WEIGHT_SUM - float(np.sum(v[~free]))
    u = v[free]
    lo, hi = float(np.min(u)) - WEIGHT_HIGH, float(np.max(u)) - WEIGHT_LOW
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if float(np.sum(np.clip(u - mid, WEIGHT_LOW, WEIGHT_HIGH))) > target:
            lo = mid
        else:
            hi = mid
    wf = np.clip(u - 0.5 * (lo + hi), WEIGHT_LOW, WEIGHT_HIGH)
    # Remove the last rounding error on the weight with most room.
    room = np.minimum(wf - WEIGHT_LOW, WEIGHT_HIGH - wf)
    wf[int(np.argmax(room))] += target - float(np.sum(wf))
    w = v.copy()
    w[free] = wf
    return w


def is_feasible(w: FloatArray, tol: float = 1e-9) -> bool:
    """Do the weights keep the constraints?"""
    return (
        w.shape == (4,)
        and bool(np.all(np.isfinite(w)))
        and abs(float(np.sum(w)) - WEIGHT_SUM) <= tol
        and bool(np.all(w >= WEIGHT_LOW - tol))
        and bool(np.all(w <= WEIGHT_HIGH + tol))
    )


def bounded_step(current: FloatArray, target: FloatArray, max_step: float,
                 held: npt.NDArray[np.bool_] | None = None) -> FloatArray:
    """Move from current toward target along the line, no weight by more than max_step
    (held weights stay exactly where they are)."""
    delta = target - current
    if held is not None:
        delta = np.where(held, 0.0, delta)
    largest = float(np.max(np.abs(delta)))
    alpha = 1.0 if largest <= max_step or largest == 0.0 else max_step / largest
    return project_weights(current + alpha * delta, held)


# --- the model --------------------------------------------------------------------------------


def _sigmoid(t: FloatArray) -> FloatArray:
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * t))
    return out


def _score_parts(x: FloatArray, risk: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Normalised components (n, 4) and the fixed risk term (n,), as in the score / 100."""
    xn = x / np.asarray(COMPONENT_MAX, dtype=np.float64)
    offset = RISK_ALLOWANCE * (1.0 - risk / RISK_MAX)
    return xn, offset


def fit_logistic(
    xn: FloatArray,
    offset: FloatArray,
    y: FloatArray,
    counts: FloatArray,
    prior: FloatArray,
    config: FitConfig,
    held: npt.NDArray[np.bool_] | None = None,
) -> LogisticFit:
    """Penalised maximum likelihood of sigmoid(b0 + s * (xn @ w + offset)) under the constraints.

    held: a mask of weights kept at their prior value (components that do not vary); the
    others are fitted, summing to 0.85 minus the held ones."""
    hold = np.zeros(4, dtype=np.bool_) if held is None else np.asarray(held, dtype=np.bool_)
    free = ~hold
    if int(np.sum(free)) < 2:
        w_all = prior.copy()
        return LogisticFit(w_all, 0.0, 0.0, float("nan"), False, "fewer than two components vary")
    full_prior = prior
    offset = offset + xn[:, hold] @ prior[hold]
    xn = xn[:, free]
    prior = prior[free]
    free_sum = WEIGHT_SUM - float(np.sum(full_prior[hold]))
    m = int(np.sum(free))
    total = float(np.sum(counts))
    penalty = 1.0 / (2.0 * config.prior_sd**2 * total)

    def parts(theta: FloatArray) -> tuple[float, FloatArray]:
        b0, s, w = theta[0], theta[1], theta[2:]
        z = xn @ w + offset
        eta = b0 + s * z
        # log(1 + e^eta) - y * eta, stable for any eta.
        loss_i = np.logaddexp(0.0, eta) - y * eta
        loss = float(np.dot(counts, loss_i)) / total + penalty * float(np.sum((w - prior) ** 2))
        g = counts * (_sigmoid(eta) - y) / total
        grad = np.empty(2 + m)
        grad[0] = float(np.sum(g))
        grad[1] = float(np.dot(g, z))
        grad[2:] = s * (xn.T @ g) + 2.0 * penalty * (w - prior)
        return loss, grad

    rate = float(np.clip(np.dot(counts, y) / total, 1e-6, 1 - 1e-6))
    theta0 = np.concatenate([[math.log(rate / (1 - rate)) - 0.5, 1.0], prior])
    bounds = [(-50.0, 50.0), (0.0, config.max_scale)] + [(WEIGHT_LOW, WEIGHT_HIGH)] * m
    constraint = {
        "type": "eq",
        "fun": lambda t: float(np.sum(t[2:]) - free_sum),
        "jac": lambda t: np.array([0.0, 0.0] + [1.0] * m),
    }
    result = minimize(
        parts, theta0, jac=True, method="SLSQP", bounds=bounds, constraints=[constraint],
        options={"maxiter": 500, "ftol": 1e-10},
    )
    theta = np.asarray(result.x, dtype=np.float64)
    w_full = full_prior.copy()
    w_full[free] = theta[2:]
    if not is_feasible(w_full, 1e-7):
        w_full = project_weights(w_full, hold)
    if not is_feasible(w_full):
        w_full = project_weights(w_full, hold)
    loss, _ = parts(np.concatenate([theta[:2], w_full[free]]))
    return LogisticFit(w_full, float(theta[0]), float(theta[1]), loss, bool(result.success),
                       str(result.message))


def weighted_auc(score: FloatArray, y: FloatArray, counts: FloatArray) -> float | None:
    """Area under the ROC curve with frequency weights; ties count one half. None if one class is absent."""
    pos = counts * y
    neg = counts * (1.0 - y)
    p_total, n_total = float(np.sum(pos)), float(np.sum(neg))
    if p_total <= 0 or n_total <= 0:
        return None
    order = np.argsort(score, kind="mergesort")
    s, p, q = score[order], pos[order], neg[order]
    # Group equal scores.
    starts = np.flatnonzero(np.concatenate([[True], np.diff(s) != 0]))
    p_g = np.add.reduceat(p, starts)
    n_g = np.add.reduceat(q, starts)
    neg_below = np.cumsum(n_g) - n_g
    return float(np.sum(p_g * (neg_below + 0.5 * n_g)) / (p_total * n_total))


# --- the decision -----------------------------------------------------------------------------


def _not_applied(reason: str, n: int, conversions: int, confidence: float, folds: int,
                 old: FloatArray, warnings: list[str]) -> WeightDecision:
    return WeightDecision(
        applied=False, reason=reason, n=n, conversions=conversions, confidence=confidence, folds=folds,
        old_weights=_as_dict(old), new_weights=_as_dict(old), warnings=warnings,
    )


def decide_weights(
    components: Sequence[Sequence[float]] | FloatArray,
    risk: Sequence[float] | FloatArray,
    converted: Sequence[float] | FloatArray,
    current: Mapping[str, Any] | Sequence[float] | None,
    *,
    confidence: float,
    counts: Sequence[float] | Sequence[Sequence[float]] | FloatArray | None = None,
    folds: Sequence[int] | npt.NDArray[np.int64] | None = None,
    config: FitConfig | None = None,
) -> WeightDecision:
    """Fit, check and decide new ALS weights.

    components: (n, 4) raw component points (data_quality, authority,
    company_fit, timing), as of each lead's first touch; risk: (n,) risk points;
    converted: (n,) 1 booked / 0 failed; current: the weights in force;
    confidence: the WHO pattern's confidence.
    Rows may be groups of identical leads: counts is then either (n,) leads per
    row, with folds (n,) the fold of each row in [0, k) (default: row index
    mod k), or (n, k) the leads of each row in each fold (folds ignored; k is
    then the number of columns). Default: one lead per row.
    """
    cfg = config or FitConfig()
    warnings: list[str] = []
    old = _weights_vector(current)
    if old is None:
        warnings.append("weights in force unreadable: defaults assumed")
        old = _weights_vector(DEFAULT_WEIGHTS)
        assert old is not None
    elif not is_feasible(old, 1e-6):
        warnings.append("weights in force outside the constraints: projected")
        old = project_weights(old)
    try:
        conf = float(confidence)
    except (TypeError, ValueError):
        conf = float("nan")
    if not math.isfinite(conf):
        conf = 0.0
        warnings.append("confidence not a number: taken as 0")
    k = max(int(cfg.folds), 2)

    try:
        x = np.asarray(components, dtype=np.float64)
        r = np.asarray(risk, dtype=np.float64)
        y = np.asarray(converted, dtype=np.float64)
        n_rows = len(y)
        raw_counts = np.ones(n_rows) if counts is None else np.asarray(counts, dtype=np.float64)
        if raw_counts.ndim == 2:
            k = raw_counts.shape[1]
            cf = raw_counts
        else:
            f = (np.arange(n_rows) % k) if folds is None else np.asarray(folds, dtype=np.int64) % k
            if f.shape != (n_rows,) or raw_counts.shape != (n_rows,):
                raise ValueError("counts and folds must have one value per row")
            cf = np.zeros((n_rows, k))
            cf[np.arange(n_rows), f] = raw_counts
    except (TypeError, ValueError, IndexError) as exc:
        return _not_applied(f"invalid input: {exc}", 0, 0, conf, k, old, warnings)

    if x.ndim != 2 or x.shape != (n_rows, 4) or r.shape != (n_rows,) or cf.shape != (n_rows, k) or k < 2:
        return _not_applied("invalid input: shapes do not match (need n x 4 components, n risks, n outcomes, "
                            "n counts or n x k fold counts with k >= 2)", 0, 0, conf, k, old, warnings)
    if n_rows == 0:
        return _not_applied("no outcomes", 0, 0, conf, k, old, warnings)
    for name, arr in (("components", x), ("risk", r), ("converted", y), ("counts", cf)):
        if not np.all(np.isfinite(arr)):
            return _not_applied(f"invalid input: non-finite values in {name}", 0, 0, conf, k, old, warnings)
    if np.any((y != 0) & (y != 1)):
        return _not_applied("invalid input: converted must be 0 or 1", 0, 0, conf, k, old, warnings)
    if np.any(cf < 0):
        return _not_applied("invalid input: negative counts", 0, 0, conf, k, old, warnings)
    # The rows in one canonical order (by every column), so that the same groups
    # give the same decision to the last digit whatever order they came in:
    # the database returns them in its plan's order, which changes with the
    # plan (floating-point sums depend on the order of their terms).
    order = np.lexsort(np.column_stack([x, r, y, cf]).T[::-1])
    x, r, y, cf = x[order], r[order], y[order], cf[order]
    c = cf.sum(axis=1)
    keep = c > 0
    x, r, y, c, cf = x[keep], r[keep], y[keep], c[keep], cf[keep]

    n = round(float(np.sum(c)))
    conversions = round(float(np.dot(c, y)))
    failures = n - conversions

    # Health checks (seed 8.3) on the sample: these block.
    if n < cfg.min_sample:
        warnings.append(f"Low sample size: {n}")
    if conf < cfg.min_confidence:
        warnings.append(f"Low confidence: {conf}")
    if n == 0:
        return _not_applied("no outcomes", 0, 0, conf, k, old, warnings)
    if conversions == 0 or failures == 0:
        what = "converted" if failures == 0 else "failed"
        return _not_applied(f"degenerate outcomes: every lead {what}", n, conversions, conf, k, old, warnings)
    if n < cfg.min_sample:
        return _not_applied(f"sample too small: {n} outcomes < {cfg.min_sample}", n, conversions, conf, k,
                            old, warnings)
    if conversions < cfg.min_conversions or failures < cfg.min_failures:
        return _not_applied(
            f"too few of one outcome: {conversions} converted, {failures} failed (need "
            f"{cfg.min_conversions} and {cfg.min_failures})", n, conversions, conf, k, old, warnings)
    if conf < cfg.min_confidence:
        return _not_applied(f"confidence too low: {conf} < {cfg.min_confidence}", n, conversions, conf, k,
                            old, warnings)
    # Components that do not vary are held at their weight in force; the others are fitted.
    held = np.array([float(np.ptp(x[:, j])) == 0.0 for j in range(4)], dtype=np.bool_)
    held_names = [key for key, h in zip(KEYS, held) if h]
    if int(np.sum(~held)) < 2:
        decision = _not_applied(
            f"degenerate input: fewer than two components vary (constant: {', '.join(held_names)})",
            n, conversions, conf, k, old, warnings)
        return WeightDecision(**{**decision.__dict__, "held_components": held_names})
    if held_names:
        warnings.append(f"held at their weight in force (constant in the data): {', '.join(held_names)}")

    xn, offset = _score_parts(x, r)

    # Out of sample: each fold fitted on the others, candidate = bounded step.
    gains: list[float] = []
    aucs_old: list[float] = []
    aucs_new: list[float] = []
    for fold in range(k):
        c_te = cf[:, fold]
        c_tr = c - c_te
        train, test = c_tr > 0, c_te > 0
        if not np.any(test) or not np.any(train):
            continue
        y_tr = y[train]
        if float(np.dot(c_tr[train], y_tr)) <= 0 or float(np.dot(c_tr[train], 1 - y_tr)) <= 0:
            continue
        fit = fit_logistic(xn[train], offset[train], y_tr, c_tr[train], old, cfg, held)
        cand = bounded_step(old, fit.weights, cfg.max_step, held)
        a_old = weighted_auc(xn[test] @ old + offset[test], y[test], c_te[test])
        a_new = weighted_auc(xn[test] @ cand + offset[test], y[test], c_te[test])
        if a_old is None or a_new is None:
            continue
        aucs_old.append(a_old)
        aucs_new.append(a_new)
        gains.append(a_new - a_old)

    full = fit_logistic(xn, offset, y, c, old, cfg, held)
    candidate = bounded_step(old, full.weights, cfg.max_step, held)
    if not full.converged:
        warnings.append(f"optimizer: {full.message}")
    for key, value in zip(KEYS, candidate):
        if value > cfg.warn_high or value < cfg.warn_low:
            warnings.append(f"Extreme weight for {key}: {round(float(value), 4)}")

    decision_kwargs: dict[str, Any] = {
        "n": n, "conversions": conversions, "confidence": conf, "folds": len(gains),
        "old_weights": _as_dict(old), "candidate_weights": _as_dict(candidate),
        "fitted_weights": _as_dict(full.weights),
        "intercept": full.intercept, "scale": full.scale, "fold_gains": gains,
        "held_components": held_names,
    }
    if len(gains) < 2:
        return WeightDecision(applied=False, reason="out-of-sample check impossible: fewer than 2 usable folds",
                              new_weights=_as_dict(old), warnings=warnings, **decision_kwargs)
    gain = float(np.mean(gains))
    se = float(np.std(gains, ddof=1) / math.sqrt(len(gains)))
    decision_kwargs.update(auc_current=float(np.mean(aucs_old)), auc_candidate=float(np.mean(aucs_new)),
                           auc_gain=gain, auc_gain_se=se)
    change = float(np.max(np.abs(candidate - old)))
    applied = False
    if change < 1e-4:
        reason = "weights in force are already the best fit"
    elif gain < cfg.min_gain:
        reason = f"no out-of-sample improvement: AUC gain {gain:.4f} < {cfg.min_gain}"
    elif gain < cfg.min_gain_z * se:
        reason = f"improvement not reliable: AUC gain {gain:.4f} < {cfg.min_gain_z} x SE {se:.4f}"
    else:
        applied = True
        reason = (f"held-out AUC {np.mean(aucs_old):.4f} -> {np.mean(aucs_new):.4f} over {len(gains)} folds; "
                  f"step of at most {cfg.max_step}")
    return WeightDecision(applied=applied, reason=reason, new_weights=_as_dict(candidate if applied else old),
                          warnings=warnings, **decision_kwargs)
