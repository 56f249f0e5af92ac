"""What daily monitoring computes, independent of Dagster: reference sketches and day performance."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from ml.drift.calibration import build_reference
from ml.drift.reference import ReferenceStats
from ml.drift.report import DriftReport, compare
from ml.evaluation import business_impact, metrics_by_slice, regression_metrics
from ml.features import feature_matrix
from ml.performance_estimate import LabelFeedback, LossEstimator, estimate_daily
from ml.spec import UseCaseSpec

PREDICTION = "prediction"
# Drift is judged on the last week, not on one day: one day is 24 rows of one weather, too few to
# tell a shift from noise. Thresholds are calibrated on windows of this many random reference days.
DRIFT_WINDOW_DAYS = 7


def monitored_columns(spec: UseCaseSpec) -> list[str]:
    return [*spec.drift_columns, PREDICTION, spec.target]


def reference_statistics(spec: UseCaseSpec, scored: pl.DataFrame) -> ReferenceStats:
    """Sketch the model's training window once (features, its predictions, the target); thresholds
    come from windows of `DRIFT_WINDOW_DAYS` random days of it, so they measure sampling noise at
    the size of the window judged, not the season the reference happens to span."""
    categorical = [c for c in spec.drift_columns if spec.column(c).categorical]
    return build_reference(scored, monitored_columns(spec), categorical, prediction=PREDICTION,
                           target=spec.target, day_column=spec.event_date, window_days=DRIFT_WINDOW_DAYS)


def window_drift(spec: UseCaseSpec, stats: ReferenceStats, features: pl.DataFrame,
                 scored: pl.DataFrame) -> DriftReport:
    """Inputs over the whole window (features exist for every ingested day); prediction and target
    over the scored days of it, and only judged once those fill the window — a model's first days
    in service are too few to call its outputs drifted."""
    inputs = compare(stats, features.select(spec.drift_columns))
    outputs = compare(stats, scored.select(PREDICTION))
    if spec.target in scored.columns:  # labels drift only on the rows whose labels have landed
        labelled = scored.filter(pl.col(spec.target).is_not_null())
        if labelled.height:
            outputs.columns += compare(stats, labelled.select(spec.target)).columns
    if scored[spec.event_date].n_unique() < DRIFT_WINDOW_DAYS:
        for column in outputs.columns:
            column.drifted_by = ()
            column.not_judged = f"not judged: model younger than {DRIFT_WINDOW_DAYS} days"
    return DriftReport(inputs.columns + outputs.columns, inputs.drift_share, features.height, stats.threshold_rule)


def estimated_performance(spec: UseCaseSpec, estimator: LossEstimator, scored: pl.DataFrame, baseline_mae: float,
                          feedback: LabelFeedback | None = None, realized: Sequence[float] = (),
                          estimated: Sequence[float] = (), own: Sequence[bool] | None = None) -> dict:
    """The label-free estimate of a day's MAE (with its interval) from features and predictions, corrected
    by `feedback` from the labelled days (`realized` and uncorrected `estimated` MAE; `own`: which of them
    the serving model served)."""
    est = estimate_daily(estimator, feature_matrix(spec, scored), scored[PREDICTION].to_numpy(),
                         scored[spec.event_date].to_numpy())
    mae, low, high = (float(est[c].mean()) for c in ("estimated_mae", "low", "high"))
    scale, days = feedback.scale(realized, estimated, own) if feedback else (1.0, 0)
    return {"estimated_mae": mae * scale, "estimated_low": low * scale, "estimated_high": high * scale,
            "estimated_mae_ratio": mae * scale / baseline_mae if baseline_mae else float("nan"),
            "estimate_level": estimator.level, "estimated_mae_dle": mae, "label_feedback_scale": scale,
            "label_feedback_days": days}


def day_performance(spec: UseCaseSpec, scored: pl.DataFrame, baseline_mae: float,
                    naive_pred: np.ndarray | None = None) -> dict:
    """A labelled day against the champion's hold-out baseline, overall, per slice and in the business figure,
    beside the seasonal-naive forecast (NaN rows, where the earlier period is unknown, left out)."""
    y = scored[spec.target].to_numpy().astype(float)
    p = scored[PREDICTION].to_numpy().astype(float)
    overall = regression_metrics(y, p)
    known = ~np.isnan(naive_pred) if naive_pred is not None else np.zeros(y.size, bool)
    return {
        **overall,
        "naive_mae": float(np.mean(np.abs(naive_pred[known] - y[known]))) if known.any() else float("nan"),
        "naive_rows": int(known.sum()),
        "baseline_mae": baseline_mae,
        "mae_ratio": overall["mae"] / baseline_mae if baseline_mae else float("nan"),
        "slices": metrics_by_slice(spec, scored, y, p),
        "business": business_impact(y, p, scored[spec.event_date].to_numpy()),
    }


def clip_counts(pred: np.ndarray) -> np.ndarray:
    """Demand cannot be negative; a model's small negative outputs are served as zero."""
    return np.clip(pred, 0.0, None)
