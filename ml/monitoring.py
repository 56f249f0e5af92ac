"""What daily monitoring computes, independent of Dagster: reference sketches and day performance."""

from __future__ import annotations

import numpy as np
import polars as pl

from ml.drift.calibration import build_reference
from ml.drift.reference import ReferenceStats
from ml.evaluation import fleet_impact, metrics_by_slice, regression_metrics
from ml.spec import UseCaseSpec

PREDICTION = "prediction"


def monitored_columns(spec: UseCaseSpec) -> list[str]:
    return [*spec.drift_columns, PREDICTION, spec.target]


def reference_statistics(spec: UseCaseSpec, scored: pl.DataFrame) -> ReferenceStats:
    """Sketch the model's training window once (features, its predictions, the target); thresholds
    are calibrated day by day, out of fold, so each feature's normal daily variation sets its bar."""
    categorical = [c for c in spec.drift_columns if spec.column(c).categorical]
    return build_reference(scored, monitored_columns(spec), categorical, prediction=PREDICTION,
                           target=spec.target, chunk_column=spec.event_date)


def day_performance(spec: UseCaseSpec, scored: pl.DataFrame, baseline_mae: float) -> dict:
    """A labelled day against the champion's hold-out baseline, overall, per slice and in bikes."""
    y = scored[spec.target].to_numpy().astype(float)
    p = scored[PREDICTION].to_numpy().astype(float)
    overall = regression_metrics(y, p)
    return {
        **overall,
        "baseline_mae": baseline_mae,
        "mae_ratio": overall["mae"] / baseline_mae if baseline_mae else float("nan"),
        "slices": metrics_by_slice(spec, scored, y, p),
        "fleet": fleet_impact(y, p, scored[spec.event_date].to_numpy()),
    }


def clip_counts(pred: np.ndarray) -> np.ndarray:
    """Demand cannot be negative; a model's small negative outputs are served as zero."""
    return np.clip(pred, 0.0, None)
