"""Tuning budgets and callbacks; permutation importance through the ONNX scorer."""

from __future__ import annotations

import numpy as np
import pytest

from ml.importance import permutation_importance
from ml.models import make_model
from ml.onnx_scoring import OnnxModel
from ml.tuning import tune


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Counts driven by column 0 only; column 1 is pure noise."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, size=(n, 2)).astype(np.float32)
    return X, 5 + 100 * X[:, 0] + rng.normal(0, 2, n)


@pytest.mark.parametrize("family, base", [("trees", {"seed": 1}), ("mlp", {"seed": 1, "epochs": 2})])
def test_tuning_stops_at_trial_budget_reports_every_trial_and_returns_full_params(family, base):
    X, y = synthetic(600)
    seen: list[tuple[int, dict, float]] = []
    best = tune(
        family,
        X[:400],
        y[:400],
        X[400:],
        y[400:],
        n_trials=3,
        timeout_s=60,
        base_params=base,
        on_trial=lambda number, params, value: seen.append((number, params, value)),
    )
    assert [number for number, _, _ in seen] == [0, 1, 2]
    best_trial = min(seen, key=lambda t: t[2])
    assert best == {**base, **best_trial[1]}
    make_model(family, best)  # usable as-is


def test_tuning_stops_at_time_budget_before_trial_budget():
    X, y = synthetic(600)
    seen: list[int] = []
    tune(
        "trees",
        X[:400],
        y[:400],
        X[400:],
        y[400:],
        n_trials=1000,
        timeout_s=0.5,
        on_trial=lambda number, *_: seen.append(number),
    )
    assert 1 <= len(seen) < 1000


def test_tuning_rejects_family_without_search_space():
    X, y = synthetic(10)
    with pytest.raises(ValueError, match="no search space"):
        tune("svm", X, y, X, y, n_trials=1, timeout_s=1)


def test_importance_through_onnx_ranks_informative_feature_above_noise():
    X, y = synthetic(1000)
    model = make_model("trees", {"n_estimators": 50}).fit(X[:700], y[:700], X[700:], y[700:])
    scorer = OnnxModel(model.to_onnx())
    importance = permutation_importance(scorer.predict, X[700:], y[700:], ["signal", "noise"], n_repeats=3, seed=0)
    assert importance["signal"] > 10 * max(importance["noise"], 0.1)
    assert importance == permutation_importance(
        scorer.predict, X[700:], y[700:], ["signal", "noise"], n_repeats=3, seed=0
    )
