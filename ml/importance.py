"""Permutation importance through a bare predict function, so the served ONNX model can be explained too."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def permutation_importance(
    predict: Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    feature_names: Sequence[str],
    n_repeats: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Mean increase in hold-out MAE when one column is shuffled; larger means the model leans on it more."""
    if X.shape[1] != len(feature_names):
        raise ValueError(f"{X.shape[1]} columns but {len(feature_names)} feature names")
    y = np.asarray(y, dtype=np.float64).ravel()
    baseline = float(np.abs(predict(X) - y).mean())
    rng = np.random.default_rng(seed)
    importance: dict[str, float] = {}
    for j, name in enumerate(feature_names):
        shuffled = X.copy()
        increases = []
        for _ in range(n_repeats):
            shuffled[:, j] = X[rng.permutation(len(X)), j]
            increases.append(float(np.abs(predict(shuffled) - y).mean()) - baseline)
        importance[name] = float(np.mean(increases))
    return importance
