"""Train one candidate end to end: judge a recipe, refit it for serving, export, prove parity, explain.

Two fits of one recipe (family + parameters + window policy):
- the *judged* fit learns from the window minus its newest days and is scored on those days (the
  hold-out); the gate decides on this out-of-sample evidence;
- the *served* fit is the same recipe refit on the whole window up to the cut-off, so no labelled
  day before the cut-off is left out of the model that serves. Parity, latency, size and importance
  are measured on this artifact.
The served recipe is also cross-fitted over blocks of days to learn its out-of-fold errors, from
which the label-free performance estimate (ml/performance_estimate.py) is fitted.

Everything the registry records about a version is produced here, without Dagster or MLflow, so
the same function serves the asset, the tests and the offline replay baselines.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from ml.evaluation import regression_metrics
from ml.features import feature_matrix, feature_names, feature_sources
from ml.importance import permutation_importance
from ml.models import CheckpointStore, make_model
from ml.onnx_scoring import OnnxModel, Parity, parity, servability
from ml.performance_estimate import fit_loss_estimator, out_of_fold_predictions
from ml.spec import UseCaseSpec
from ml.training_set import SPLITS
from ml.tuning import tune

PARITY_TOLERANCE = 1e-3  # relative; ONNX runs in float32, native models in float64


@dataclass(frozen=True)
class TrainedCandidate:
    family: str
    params: dict
    metrics: dict[str, dict[str, float]]  # judged fit: split -> MAE/RMSE/MAPE, from its ONNX model
    served_metrics: dict[str, float]  # served fit on the whole window (in sample, for the record)
    parity: Parity  # of the served artifact
    latency_ms_per_1k: float
    size_bytes: int
    importances: dict[str, float]
    onnx_bytes: bytes  # the served fit
    judged_onnx_bytes: bytes  # the fit the gate judges on the hold-out
    input_example: np.ndarray
    loss_estimator: dict  # ml.performance_estimate.LossEstimator.to_dict() for the served fit


def xy(spec: UseCaseSpec, frame: pl.DataFrame, split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    part = frame if split is None else frame.filter(pl.col("split") == split)
    return feature_matrix(spec, part), part[spec.target].to_numpy().astype(np.float64)


def recency_weights(frame: pl.DataFrame, event_date: str, half_life_days: float) -> np.ndarray | None:
    """Weight 0.5 ** (age / half-life) by a row's age in days before the newest day; None when off."""
    if half_life_days <= 0:
        return None
    day = frame[event_date]
    age = (day.max() - day).dt.total_days().to_numpy().astype(np.float64)
    return 0.5 ** (age / half_life_days)


def train_candidate(spec: UseCaseSpec, frame: pl.DataFrame, family: str, params: dict, *, seed: int = 0,
                    tune_trials: int = 0, tune_timeout_s: float = 120.0, recency_half_life_days: float = 0.0,
                    loss_estimate_folds: int = 5,
                    on_trial: Callable[[int, dict, float], None] | None = None,
                    checkpoints: CheckpointStore | None = None,
                    on_epoch: Callable[[str, int, float, float], None] | None = None) -> TrainedCandidate:
    """`on_epoch(fit, epoch, train_loss, val_loss)` hears each epoch of the judged and the served fit
    (`fit` is "judged" or "served") of a family that trains in epochs (`EpochCallback`); a served fit
    resumed from checkpoints reports the epochs it runs, from the one after the checkpoint."""
    data = {s: xy(spec, frame, s) for s in SPLITS}
    (X_train, y_train), (X_val, y_val), (X_hold, y_hold) = data["train"], data["validation"], data["holdout"]
    params = {**params, "seed": seed}
    if tune_trials:
        params = tune(family, X_train, y_train, X_val, y_val, n_trials=tune_trials, timeout_s=tune_timeout_s,
                      seed=seed, base_params=params, on_trial=on_trial)

    def fit(rows: pl.DataFrame, which: str, params: dict, store: CheckpointStore | None = None):
        X, y = xy(spec, rows)
        weights = recency_weights(rows, spec.event_date, recency_half_life_days)
        extra = {} if weights is None else {"sample_weight": weights}
        if extra and family != "trees":
            raise ValueError(f"recency weighting is supported by the trees family, not {family!r}")
        model = make_model(family, params)
        if on_epoch is not None and "on_epoch" in inspect.signature(model.fit).parameters:
            extra["on_epoch"] = lambda epoch, train_loss, val_loss: on_epoch(which, epoch, train_loss, val_loss)
        return model.fit(X, y, X_val, y_val, checkpoints=store, **extra)

    before_holdout = frame.filter(pl.col("split") != "holdout")
    judged_model = fit(before_holdout, "judged", params)
    judged = OnnxModel(judged_onnx := judged_model.to_onnx())
    # The served fit and the loss estimator's cross-fits train on the validation rows too: they take the
    # judged fit's choices (an MLP's epoch count) instead of early stopping on rows they learn from.
    refit = judged_model.refit_params()
    served_model = fit(frame, "served", refit, checkpoints)
    onnx_bytes = served_model.to_onnx()
    served = OnnxModel(onnx_bytes)
    X_all, y_all = xy(spec, frame)
    check = parity(served_model.predict(X_all), served.predict(X_all), tolerance=PARITY_TOLERANCE)
    if not check.passed:
        raise ValueError(f"ONNX parity failed for {family}: max abs {check.max_abs:.3g}, max rel {check.max_rel:.3g}")
    return TrainedCandidate(
        family=family,
        params=served_model.params,
        metrics={s: regression_metrics(y, judged.predict(X)) for s, (X, y) in data.items()},
        served_metrics=regression_metrics(y_all, served.predict(X_all)),
        parity=check,
        latency_ms_per_1k=servability(onnx_bytes, X_hold).latency_ms_per_1k,
        size_bytes=len(onnx_bytes),
        importances=permutation_importance(served.predict, X_hold, y_hold, feature_names(spec), seed=seed),
        onnx_bytes=onnx_bytes,
        judged_onnx_bytes=judged_onnx,
        input_example=X_hold[:5],
        loss_estimator=loss_estimator(spec, frame, family, refit, X_val, y_val, loss_estimate_folds),
    )


def loss_estimator(spec: UseCaseSpec, frame: pl.DataFrame, family: str, params: dict, X_val: np.ndarray,
                   y_val: np.ndarray, folds: int) -> dict:
    """Cross-fit the served recipe over blocks of days and learn its errors from the out-of-fold rows."""
    X, y = xy(spec, frame)
    days = frame[spec.event_date].to_numpy()

    def fit_predict(X_fit: np.ndarray, y_fit: np.ndarray, X_out: np.ndarray) -> np.ndarray:
        return np.clip(make_model(family, params).fit(X_fit, y_fit, X_val, y_val).predict(X_out), 0, None)

    oof = out_of_fold_predictions(X, y, days, fit_predict, folds=folds)
    names, sources = feature_names(spec), feature_sources(spec)
    inputs = [n for n in names if sources[n] not in spec.estimator_excludes]
    return fit_loss_estimator(X, oof, np.abs(oof - y), days, names, inputs=inputs, folds=folds).to_dict()
