"""What daily monitoring computes, independent of Dagster: reference sketches and day performance."""

from __future__ import annotations

import numpy as np
import polars as pl

from ml.drift.calibration import build_reference
from ml.drift.reference import ReferenceStats
from ml.drift.report import DriftReport, compare
from ml.evaluation import fleet_impact, metrics_by_slice, regression_metrics
from ml.spec import UseCaseSpec

PREDICTION = "prediction"
# Drift is judged on the last week, not on one day: a single day's weather is one narrow slice of a
# season, so day-sized chunks would calibrate thresholds too wide to ever fire (measured: PSI
# thresholds of ~8 for temperature). A week is what thresholds are calibrated on, out of fold.
DRIFT_WINDOW_DAYS = 7
_CHUNK = "_window"


def monitored_columns(spec: UseCaseSpec) -> list[str]:
    return [*spec.drift_columns, PREDICTION, spec.target]


def reference_statistics(spec: UseCaseSpec, scored: pl.DataFrame) -> ReferenceStats:
    """Sketch the model's training window once (features, its predictions, the target); thresholds
    are calibrated day by day, out of fold, so each feature's normal daily variation sets its bar."""
    categorical = [c for c in spec.drift_columns if spec.column(c).categorical]
    event = pl.col(spec.event_date)
    chunked = scored.with_columns(((event - event.min()).dt.total_days() // DRIFT_WINDOW_DAYS).alias(_CHUNK))
    return build_reference(chunked, monitored_columns(spec), categorical, prediction=PREDICTION,
                           target=spec.target, chunk_column=_CHUNK)


def window_drift(spec: UseCaseSpec, stats: ReferenceStats, features: pl.DataFrame,
                 scored: pl.DataFrame) -> DriftReport:
    """Inputs over the whole window (features exist for every ingested day); prediction and target
    over the scored days of it, and only judged once those fill the window — a model's first days
    in service are too few to call its outputs drifted."""
    inputs = compare(stats, features.select(spec.drift_columns))
    outputs = compare(stats, scored.select(c for c in (PREDICTION, spec.target) if c in scored.columns))
    if scored[spec.event_date].n_unique() < DRIFT_WINDOW_DAYS:
        for column in outputs.columns:
            column.drifted_by = ()
    return DriftReport(inputs.columns + outputs.columns, inputs.drift_share, features.height, stats.threshold_rule)


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
