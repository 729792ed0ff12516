"""Unit tests of the weight learning (plpython/ci_stats/weights.py) and its PL/Python adapter.

Pure Python, no database: constraints, the bounded step, convergence, the
out-of-sample gate on data with and without signal, degenerate input, grouped
input, the AUC, and the adapter with a stand-in for plpy. One test runs the
module under the database server's own Python (numpy 1.24, scipy 1.10).
"""
from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ci_stats import plpy_adapter
from ci_stats.weights import (
    COMPONENT_MAX,
    DEFAULT_WEIGHTS,
    KEYS,
    FitConfig,
    WeightDecision,
    bounded_step,
    decide_weights,
    is_feasible,
    project_weights,
    weighted_auc,
)

ROOT = Path(__file__).resolve().parent.parent
FloatArray = npt.NDArray[np.float64]

DQ_VALUES = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
AUTH_VALUES = [0, 5, 7, 10, 15, 18, 22, 25]
FIT_VALUES = [0, 3, 5, 7, 8, 10, 15, 17, 18, 25]
TIMING_VALUES = [0, 2, 3, 4, 5, 6, 7, 9, 11, 15]


def synthetic(seed: int, n: int, beta: tuple[float, float, float, float], base: float = -2.2
              ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Components, risk, outcomes: logit P = base + sum beta_j * x_j / max_j (risk lowers it a little)."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([
        rng.choice(DQ_VALUES, n), rng.choice(AUTH_VALUES, n), rng.choice(FIT_VALUES, n), rng.choice(TIMING_VALUES, n),
    ]).astype(np.float64)
    risk = rng.choice([0.0, 5.0, 10.0, 15.0], n, p=[0.85, 0.08, 0.04, 0.03])
    eta = base + (x / np.asarray(COMPONENT_MAX)) @ np.asarray(beta) - 0.5 * risk / 15
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(np.float64)
    return x, risk, y


def vec(weights: dict[str, float]) -> FloatArray:
    return np.array([weights[k] for k in KEYS])


def feasible(weights: dict[str, float] | None) -> bool:
    return weights is not None and is_feasible(vec(weights), 1e-9)


# --- constraints and the bounded step --------------------------------------------------------


def test_projection_always_lands_inside_the_constraints() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        v = rng.normal(0.2, 0.5, 4)
        w = project_weights(v)
        assert is_feasible(w, 1e-12), (v, w)
    # Already feasible points do not move.
    d = vec(DEFAULT_WEIGHTS)
    assert np.allclose(project_weights(d), d, atol=1e-12)


def test_bounded_step_moves_each_weight_at_most_the_step_and_stays_feasible() -> None:
    rng = np.random.default_rng(1)
    for _ in range(500):
        a = project_weights(rng.normal(0.2, 0.3, 4))
        b = project_weights(rng.normal(0.2, 0.3, 4))
        step = bounded_step(a, b, 0.05)
        assert is_feasible(step, 1e-12)
        assert np.max(np.abs(step - a)) <= 0.05 + 1e-9
        # Along the line from a to b: never overshoots, reaches b when it is close.
        if np.max(np.abs(b - a)) <= 0.05:
            assert np.allclose(step, b, atol=1e-9)
        else:
            assert np.dot(step - a, b - a) > 0


def test_every_decision_keeps_the_constraints() -> None:
    for seed in range(12):
        b = np.random.default_rng(100 + seed).normal(0, 2, 4)
        x, risk, y = synthetic(seed, 1500, (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
        d = decide_weights(x, risk, y, DEFAULT_WEIGHTS, confidence=0.99)
        for weights in (d.old_weights, d.new_weights, d.candidate_weights, d.fitted_weights):
            assert feasible(weights), (seed, weights)
        assert d.candidate_weights is not None
        assert max(abs(d.candidate_weights[k] - d.old_weights[k]) for k in KEYS) <= 0.05 + 1e-9


# --- signal and no signal ----------------------------------------------------------------------


def test_planted_timing_signal_raises_the_timing_weight_and_is_applied() -> None:
    x, risk, y = synthetic(7, 4000, (0.0, 0.0, 0.0, 3.0))
    d = decide_weights(x, risk, y, DEFAULT_WEIGHTS, confidence=1.0)
    assert d.applied, d.reason
    assert d.auc_candidate is not None and d.auc_current is not None
    assert d.auc_candidate > d.auc_current
    assert d.new_weights["timing"] == pytest.approx(0.20, abs=1e-9)  # one bounded step up
    assert d.fitted_weights is not None and d.fitted_weights["timing"] > 0.3
    assert d.folds == 5 and len(d.fold_gains) == 5


def test_learned_weights_raise_auc_on_fresh_data() -> None:
    x, risk, y = synthetic(8, 4000, (0.0, 0.5, 0.5, 3.0))
    d = decide_weights(x, risk, y, DEFAULT_WEIGHTS, confidence=1.0)
    assert d.applied
    x2, risk2, y2 = synthetic(9, 20000, (0.0, 0.5, 0.5, 3.0))
    offset = 0.15 * (1 - risk2 / 15)
    xn = x2 / np.asarray(COMPONENT_MAX)
    ones = np.ones(len(y2))
    auc_old = weighted_auc(xn @ vec(DEFAULT_WEIGHTS) + offset, y2, ones)
    auc_new = weighted_auc(xn @ vec(d.new_weights) + offset, y2, ones)
    assert auc_old is not None and auc_new is not None and auc_new > auc_old + 0.005


@pytest.mark.parametrize("seed", range(6))
def test_no_signal_applies_no_weights(seed: int) -> None:
    x, risk, y = synthetic(200 + seed, 3000, (0.0, 0.0, 0.0, 0.0))
    d = decide_weights(x, risk, y, DEFAULT_WEIGHTS, confidence=1.0)
    assert not d.applied, d.reason
    assert d.new_weights == d.old_weights


def test_repeated_refreshes_converge() -> None:
    x, risk, y = synthetic(11, 5000, (0.0, 0.0, 0.5, 3.0))
    current = dict(DEFAULT_WEIGHTS)
    steps: list[float] = []
    for _ in range(25):
        d = decide_weights(x, risk, y, current, confidence=1.0, config=FitConfig(min_gain=0.0, min_gain_z=0.0))
        step = max(abs(d.new_weights[k] - current[k]) for k in KEYS)
        steps.append(step)
        assert step <= 0.05 + 1e-9
        current = d.new_weights
    assert steps[0] == pytest.approx(0.05, abs=1e-9)
    assert steps[-1] < 0.005, steps
    assert all(b <= a + 1e-6 for a, b in itertools.pairwise(steps[5:])), steps
    # The fixed point: the weights in force are the fit's own answer.
    last = decide_weights(x, risk, y, current, confidence=1.0)
    assert last.fitted_weights is not None
    assert max(abs(last.fitted_weights[k] - current[k]) for k in KEYS) < 0.01


# --- grouped input ------------------------------------------------------------------------------


def test_grouped_rows_give_the_same_decision_as_one_row_per_lead() -> None:
    x, risk, y = synthetic(12, 3000, (0.0, 1.0, 0.5, 2.0))
    folds = np.arange(len(y)) % 5
    per_lead = decide_weights(x, risk, y, DEFAULT_WEIGHTS, confidence=1.0, folds=folds)
    # Group identical (components, risk, outcome) rows, counting leads per fold.
    keys: dict[tuple[float, ...], list[int]] = {}
    for i in range(len(y)):
        keys.setdefault((*x[i], risk[i], y[i]), [0] * 5)[folds[i]] += 1
    rows = np.array(list(keys.keys()))
    counts = np.array(list(keys.values()), dtype=np.float64)
    grouped = decide_weights(rows[:, :4], rows[:, 4], rows[:, 5], DEFAULT_WEIGHTS, confidence=1.0, counts=counts)
    assert len(rows) < len(y)
    assert grouped.applied == per_lead.applied
    assert grouped.auc_current == pytest.approx(per_lead.auc_current, abs=1e-9)
    assert grouped.auc_candidate == pytest.approx(per_lead.auc_candidate, abs=1e-6)
    for k in KEYS:
        assert grouped.new_weights[k] == pytest.approx(per_lead.new_weights[k], abs=1e-5)


def test_the_order_of_grouped_rows_does_not_change_the_decision() -> None:
    """The database hands the groups over in its plan's order; the decision is the same to the last digit."""
    x, risk, y = synthetic(13, 3000, (0.0, 1.0, 0.5, 2.0))
    folds = np.arange(len(y)) % 5
    keys: dict[tuple[float, ...], list[int]] = {}
    for i in range(len(y)):
        keys.setdefault((*x[i], risk[i], y[i]), [0] * 5)[folds[i]] += 1
    rows = np.array(list(keys.keys()))
    counts = np.array(list(keys.values()), dtype=np.float64)
    first = decide_weights(rows[:, :4], rows[:, 4], rows[:, 5], DEFAULT_WEIGHTS, confidence=1.0, counts=counts)
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(rows))
        again = decide_weights(rows[order, :4], rows[order, 4], rows[order, 5], DEFAULT_WEIGHTS, confidence=1.0,
                               counts=counts[order])
        assert again.to_json() == first.to_json()


def test_weighted_auc_matches_pair_counting_with_ties() -> None:
    rng = np.random.default_rng(3)
    score = rng.integers(0, 6, 300).astype(np.float64)
    y = (rng.random(300) < 0.3).astype(np.float64)
    w = rng.integers(1, 4, 300).astype(np.float64)
    pos = [(s, c) for s, t, c in zip(score, y, w) if t == 1]
    neg = [(s, c) for s, t, c in zip(score, y, w) if t == 0]
    num = sum(cp * cn * (1.0 if sp > sn else 0.5 if sp == sn else 0.0) for sp, cp in pos for sn, cn in neg)
    den = sum(c for _, c in pos) * sum(c for _, c in neg)
    assert weighted_auc(score, y, w) == pytest.approx(num / den, abs=1e-12)
    assert weighted_auc(score, np.ones(300), w) is None


# --- degenerate input ---------------------------------------------------------------------------


def _decide(**overrides: Any) -> WeightDecision:
    x, risk, y = synthetic(5, 600, (0.0, 1.0, 1.0, 2.0))
    args: dict[str, Any] = {"components": x, "risk": risk, "converted": y, "current": DEFAULT_WEIGHTS}
    args.update(overrides)
    return decide_weights(args.pop("components"), args.pop("risk"), args.pop("converted"), args.pop("current"),
                          confidence=args.pop("confidence", 1.0), **args)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"converted": np.ones(600)}, "every lead converted"),
        ({"converted": np.zeros(600)}, "every lead failed"),
        ({"components": np.column_stack([np.full(600, 8.0), np.full(600, 5.0), np.full(600, 10.0),
                                          np.arange(600) % 15])}, "fewer than two components vary"),
        ({"components": np.full((600, 4), np.nan)}, "non-finite values in components"),
        ({"risk": np.full(600, np.inf)}, "non-finite values in risk"),
        ({"components": np.zeros((0, 4)), "risk": np.zeros(0), "converted": np.zeros(0)}, "no outcomes"),
        ({"components": np.zeros((10, 3))}, "shapes do not match"),
        ({"converted": np.full(600, 2.0)}, "converted must be 0 or 1"),
        ({"counts": -np.ones(600)}, "negative counts"),
        ({"confidence": 0.3}, "confidence too low"),
        ({"components": np.zeros((40, 4)) + np.arange(40)[:, None], "risk": np.zeros(40),
          "converted": (np.arange(40) % 3 == 0).astype(float)}, "sample too small"),
    ],
)
def test_degenerate_input_is_not_applied_and_says_why(overrides: dict[str, Any], reason: str) -> None:
    d = _decide(**overrides)
    assert not d.applied
    assert reason in d.reason
    assert d.new_weights == d.old_weights
    json.dumps(d.to_json())  # always serialisable


def test_unreadable_current_weights_fall_back_to_the_defaults() -> None:
    d = _decide(current={"data_quality": "x"})
    assert d.old_weights == pytest.approx(DEFAULT_WEIGHTS)
    assert any("unreadable" in w for w in d.warnings)
    d = _decide(current=[0.6, 0.6, 0.6, 0.6])
    assert feasible(d.old_weights)
    assert any("projected" in w for w in d.warnings)


def test_health_warnings_follow_the_seed() -> None:
    x, risk, y = synthetic(13, 3000, (0.0, 0.0, 0.0, 4.0))
    current = {"data_quality": 0.1, "authority": 0.15, "company_fit": 0.15, "timing": 0.45}
    d = decide_weights(x, risk, y, current, confidence=1.0)
    assert any(w.startswith("Extreme weight for timing") for w in d.warnings), d.warnings
    small = decide_weights(x[:45], risk[:45], y[:45], DEFAULT_WEIGHTS, confidence=0.2)
    assert "Low sample size: 45" in small.warnings and "Low confidence: 0.2" in small.warnings


def test_config_from_json_ignores_junk() -> None:
    cfg = FitConfig.from_mapping({"folds": "3", "prior_sd": "nan", "max_step": True, "nonsense": 1, "min_gain": 0.01})
    assert cfg.folds == 3 and cfg.prior_sd == FitConfig().prior_sd and cfg.max_step == FitConfig().max_step
    assert cfg.min_gain == 0.01


# --- the PL/Python adapter, with a stand-in for plpy -----------------------------------------------


class FakePlpy:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)


def _sql_arrays(seed: int, beta: tuple[float, float, float, float]) -> tuple[list[list[int]], list[int], list[int],
                                                                            list[list[int]]]:
    """What ci_private.als_learning_rows hands over: grouped rows with fold counts."""
    x, risk, y = synthetic(seed, 3000, beta)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i in range(len(y)):
        key = (*(int(v) for v in x[i]), int(risk[i]), int(y[i]))
        groups.setdefault(key, [0] * 5)[i % 5] += 1
    keys = list(groups)
    return [list(k[:4]) for k in keys], [k[4] for k in keys], [k[5] for k in keys], list(groups.values())


def test_adapter_turns_sql_arrays_into_a_json_decision() -> None:
    comps, risk, conv, folds = _sql_arrays(21, (0.0, 0.0, 0.0, 3.0))
    plpy = FakePlpy()
    out = plpy_adapter.fit_als_weights(
        plpy, [c[0] for c in comps], [c[1] for c in comps], [c[2] for c in comps], [c[3] for c in comps],
        risk, conv, folds, json.dumps(DEFAULT_WEIGHTS), 1.0, "{}",
    )
    decision = json.loads(out)
    assert decision["status"] == "fitted" and decision["applied"] is True
    assert decision["folds"] == 5 and decision["n"] == 3000
    assert feasible(decision["new_weights"]) and decision["new_weights"]["timing"] > 0.15
    assert plpy.warnings == []


def test_adapter_never_raises() -> None:
    plpy = FakePlpy()
    # A client without outcomes: SQL hands over nulls.
    out = json.loads(plpy_adapter.fit_als_weights(plpy, None, None, None, None, None, None, None, None, None, None))
    assert out["applied"] is False and out["reason"] == "no outcomes"
    assert out["old_weights"] == DEFAULT_WEIGHTS
    # Ragged fold counts: numpy refuses, the adapter reports it through plpy.
    out = json.loads(plpy_adapter.fit_als_weights(
        plpy, [1, 2], [1, 2], [1, 2], [1, 2], [0, 0], [0, 1], [[1, 2], [3]], "not json", 0.9, "[1]",
    ))
    assert out["applied"] is False and out["reason"].startswith("fit failed")
    assert len(plpy.warnings) == 1 and "fit_als_weights" in plpy.warnings[0]
    # Nulls inside the arrays are non-finite input, not a crash.
    out = json.loads(plpy_adapter.fit_als_weights(
        plpy, [1, None], [1, 2], [1, 2], [1, 2], [0, 0], [0, 1], [[1, 0], [0, 1]], None, 0.9, None,
    ))
    assert out["applied"] is False and "non-finite" in out["reason"]


def test_module_runs_under_the_database_servers_python() -> None:
    """numpy 1.24 / scipy 1.10 compatibility: run a decision with Debian's /usr/bin/python3."""
    server_python = shutil.which("python3", path="/usr/bin")
    if server_python is None:
        pytest.skip("no /usr/bin/python3")
    probe = subprocess.run([server_python, "-c", "import numpy, scipy"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("the server's Python has no numpy/scipy here")
    script = (
        "import json, numpy as np\n"
        "from ci_stats.weights import decide_weights, DEFAULT_WEIGHTS\n"
        "rng = np.random.default_rng(1)\n"
        "x = np.column_stack([rng.integers(0, 21, 2000), rng.integers(0, 26, 2000), rng.integers(0, 26, 2000),"
        " rng.integers(0, 16, 2000)]).astype(float)\n"
        "y = (rng.random(2000) < 1 / (1 + np.exp(2.5 - 3 * x[:, 3] / 15))).astype(float)\n"
        "d = decide_weights(x, np.zeros(2000), y, DEFAULT_WEIGHTS, confidence=1.0)\n"
        "print(json.dumps({'applied': d.applied, 'numpy': np.__version__, 'w': d.new_weights}))\n"
    )
    out = subprocess.run([server_python, "-c", script], capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT / "plpython"), "PATH": "/usr/bin:/bin"}, check=True)
    result = json.loads(out.stdout)
    assert result["applied"] is True
    assert feasible(result["w"])


# --- constant components (issue 14) -------------------------------------------------------------


@pytest.mark.parametrize("constant", ["data_quality", "timing", "data_quality+timing"])
def test_constant_components_are_held_and_the_others_learn(constant: str) -> None:
    """A component with no variance (every lead has the same contact data) is normal in a client's
    data: it is held at its weight in force, the others are fitted (still summing to 0.85 within the
    bounds), and the decision says which were held. Before issue 14 the fit refused outright."""
    x, risk, y = synthetic(21, 6000, (0.0, 3.0, 0.2, 0.2))
    names = constant.split("+")
    for name in names:
        x[:, KEYS.index(name)] = 8.0
    current = {"data_quality": 0.20, "authority": 0.20, "company_fit": 0.30, "timing": 0.15}
    d = decide_weights(x, risk, y, current, confidence=1.0)
    assert d.held_components == names and d.to_json()["held_components"] == names
    assert d.auc_current is not None, f"the held-out comparison ran: {d.reason}"
    assert d.applied, d.reason
    for name in names:
        assert d.new_weights[name] == current[name], "held exactly at the weight in force"
        assert d.fitted_weights is not None and d.fitted_weights[name] == current[name]
    assert is_feasible(vec(d.new_weights))
    assert d.new_weights["authority"] > current["authority"], "the varying component with the signal gains"


def test_held_projection_keeps_held_weights_exactly() -> None:
    held = np.array([True, False, False, True])
    w = project_weights(np.array([0.2, 0.9, -0.3, 0.15]), held)
    assert w[0] == 0.2 and w[3] == 0.15 and is_feasible(w)
    step = bounded_step(np.array([0.2, 0.25, 0.25, 0.15]), np.array([0.45, 0.40, 0.10, 0.05]), 0.05, held)
    assert step[0] == 0.2 and step[3] == 0.15 and is_feasible(step)
    assert step[1] == pytest.approx(0.30) and step[2] == pytest.approx(0.20)
