"""Train one candidate end to end: fit, export to ONNX, prove parity, measure serving, explain.

Everything the registry records about a version is produced here, without Dagster or MLflow, so
the same function serves the asset, the tests and the offline replay baselines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from ml.evaluation import regression_metrics
from ml.features import feature_matrix, feature_names
from ml.importance import permutation_importance
from ml.models import CheckpointStore, make_model
from ml.onnx_scoring import OnnxModel, Parity, parity, servability
from ml.spec import UseCaseSpec
from ml.training_set import SPLITS
from ml.tuning import tune

PARITY_TOLERANCE = 1e-3  # relative; ONNX runs in float32, native models in float64


@dataclass(frozen=True)
class TrainedCandidate:
    family: str
    params: dict
    metrics: dict[str, dict[str, float]]  # split -> MAE/RMSE/MAPE, from the ONNX model
    parity: Parity
    latency_ms_per_1k: float
    size_bytes: int
    importances: dict[str, float]
    onnx_bytes: bytes
    input_example: np.ndarray


def xy(spec: UseCaseSpec, frame: pl.DataFrame, split: str) -> tuple[np.ndarray, np.ndarray]:
    part = frame.filter(pl.col("split") == split)
    return feature_matrix(spec, part), part[spec.target].to_numpy().astype(np.float64)


def train_candidate(spec: UseCaseSpec, frame: pl.DataFrame, family: str, params: dict, *, seed: int = 0,
                    tune_trials: int = 0, tune_timeout_s: float = 120.0,
                    on_trial: Callable[[int, dict, float], None] | None = None,
                    checkpoints: CheckpointStore | None = None) -> TrainedCandidate:
    data = {s: xy(spec, frame, s) for s in SPLITS}
    (X_train, y_train), (X_val, y_val), (X_hold, y_hold) = data["train"], data["validation"], data["holdout"]
    params = {**params, "seed": seed}
    if tune_trials:
        params = tune(family, X_train, y_train, X_val, y_val, n_trials=tune_trials, timeout_s=tune_timeout_s,
                      seed=seed, base_params=params, on_trial=on_trial)
    model = make_model(family, params).fit(X_train, y_train, X_val, y_val, checkpoints=checkpoints)
    onnx_bytes = model.to_onnx()
    served = OnnxModel(onnx_bytes)
    check = parity(model.predict(X_hold), served.predict(X_hold), tolerance=PARITY_TOLERANCE)
    if not check.passed:
        raise ValueError(f"ONNX parity failed for {family}: max abs {check.max_abs:.3g}, max rel {check.max_rel:.3g}")
    serving = servability(onnx_bytes, X_hold)
    return TrainedCandidate(
        family=family,
        params=model.params,
        metrics={s: regression_metrics(y, served.predict(X)) for s, (X, y) in data.items()},
        parity=check,
        latency_ms_per_1k=serving.latency_ms_per_1k,
        size_bytes=serving.size_bytes,
        importances=permutation_importance(served.predict, X_hold, y_hold, feature_names(spec), seed=seed),
        onnx_bytes=onnx_bytes,
        input_example=X_hold[:5],
    )
