"""Model quality: overall and per-slice error, a paired bootstrap, and what errors cost the business."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

from ml.features import category_level
from ml.spec import Slice, UseCaseSpec

UNKNOWN = "unknown"  # segment for nulls and values outside a slice's bins or allowed set
HOURS_PER_DAY = 24


def regression_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """MAE, RMSE and MAPE (a fraction, not %), plus the row count `n`.

    MAPE is averaged over rows with y_true > 0 only: a row with zero demand has no percentage
    error, and flooring it would let a handful of empty night hours dominate. NaN if no such row.
    """
    y, p = _pair(y_true, y_pred)
    err = p - y
    positive = y > 0
    return {
        "n": int(y.size),
        "mae": float(np.mean(np.abs(err))) if y.size else float("nan"),
        "rmse": float(np.sqrt(np.mean(err**2))) if y.size else float("nan"),
        "mape": float(np.mean(np.abs(err[positive]) / y[positive])) if positive.any() else float("nan"),
    }


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if y.shape != p.shape:
        raise ValueError(f"y_true {y.shape} and y_pred {p.shape} differ in shape")
    return y, p


def _levels(spec: UseCaseSpec, s: Slice) -> tuple:
    """The values a slice without bins segments by: the declared levels, or True/False for a bool."""
    c = spec.column(s.column)
    if c.allowed is not None:
        return tuple(c.allowed)
    if c.dtype == "bool":
        return (True, False)
    raise ValueError(f"slice {s.name!r}: column {s.column!r} needs bins or an allowed set")


def _segment_names(spec: UseCaseSpec, s: Slice) -> tuple[str, ...]:
    if s.bins is not None:
        return s.labels or tuple(f"[{lo}, {hi})" for lo, hi in zip(s.bins, s.bins[1:]))
    c = spec.column(s.column)
    default = c.true_false if c.dtype == "bool" and c.allowed is None else tuple(str(v) for v in _levels(spec, s))
    return s.labels or tuple(default)


def _slice_expr(spec: UseCaseSpec, s: Slice, frame: pl.DataFrame) -> pl.Expr:
    """Slices are labelled on feature tables too, where a text category is indicators or an index."""
    names = _segment_names(spec, s)
    c = spec.column(s.column)
    col = category_level(c, frame) if c.dtype == "category" else pl.col(s.column)
    if s.bins is None:
        mapping = dict(zip(_levels(spec, s), names))
        return col.replace_strict(mapping, default=UNKNOWN, return_dtype=pl.String)
    edges = list(zip(s.bins, s.bins[1:], names))
    (lo, hi, name), *rest = edges
    expr = pl.when((col >= lo) & (col < hi)).then(pl.lit(name))
    for lo, hi, name in rest:
        expr = expr.when((col >= lo) & (col < hi)).then(pl.lit(name))
    return expr.otherwise(pl.lit(UNKNOWN))


def slice_labels(spec: UseCaseSpec, frame: pl.DataFrame) -> dict[str, pl.Series]:
    """One label per row for every slice of the spec: right-open bins, or one segment per allowed value.

    Every row lands in exactly one segment; nulls and out-of-range values go to `UNKNOWN`.
    """
    labels = frame.select(_slice_expr(spec, s, frame).fill_null(UNKNOWN).alias(s.name) for s in spec.slices)
    return {name: labels[name] for name in labels.columns}


def metrics_by_slice(
    spec: UseCaseSpec, frame: pl.DataFrame, y_true: ArrayLike, y_pred: ArrayLike
) -> list[dict]:
    """Rows of (slice, segment, n, mae, rmse, mape) in spec order; empty segments are left out."""
    y, p = _pair(y_true, y_pred)
    rows = []
    for s, labels in zip(spec.slices, slice_labels(spec, frame).values()):
        labels = labels.to_numpy()
        for segment in (*_segment_names(spec, s), UNKNOWN):
            mask = labels == segment
            if mask.any():
                rows.append({"slice": s.name, "segment": segment, **regression_metrics(y[mask], p[mask])})
    return rows


@dataclass(frozen=True)
class BootstrapResult:
    """Paired bootstrap of MAE(challenger) - MAE(champion): negative means the challenger is better."""

    mae_champion: float
    mae_challenger: float
    mae_diff: float
    ci_low: float
    ci_high: float
    p_better: float  # share of resamples where the challenger's MAE is strictly lower
    n_boot: int
    n_units: int  # rows, or blocks when resampling blocks

    @property
    def significant(self) -> bool:
        """The whole 95% interval is below zero: the challenger is better beyond resampling noise."""
        return self.ci_high < 0


def paired_bootstrap(
    y_true: ArrayLike,
    pred_champion: ArrayLike,
    pred_challenger: ArrayLike,
    n_boot: int = 1000,
    seed: int = 0,
    blocks: ArrayLike | None = None,
) -> BootstrapResult:
    """Resample the same rows (or whole blocks) for both models and look at the MAE difference.

    Pairing removes the shared difficulty of each hour. Hourly errors are autocorrelated (a rainy
    day hurts every hour of it), so pass a block id per row (e.g. the date) to resample whole days;
    resampling rows then would give an interval that is too narrow.
    """
    y, champ = _pair(y_true, pred_champion)
    _, chal = _pair(y_true, pred_challenger)
    gain = np.abs(chal - y) - np.abs(champ - y)
    if blocks is None:
        unit_sum, unit_n = gain, np.ones_like(gain)
    else:
        _, unit = np.unique(np.asarray(blocks), return_inverse=True)
        unit_sum, unit_n = np.bincount(unit, weights=gain), np.bincount(unit).astype(float)
    rng = np.random.default_rng(seed)
    units = unit_sum.size
    diffs = np.empty(n_boot)
    chunk = max(1, 2_000_000 // max(units, 1))  # bound the (replicates x units) index matrix
    for start in range(0, n_boot, chunk):
        draw = rng.integers(0, units, size=(min(chunk, n_boot - start), units))
        diffs[start : start + draw.shape[0]] = unit_sum[draw].sum(axis=1) / unit_n[draw].sum(axis=1)
    low, high = np.quantile(diffs, [0.025, 0.975])
    mae_champ, mae_chal = float(np.mean(np.abs(champ - y))), float(np.mean(np.abs(chal - y)))
    return BootstrapResult(
        mae_champion=mae_champ,
        mae_challenger=mae_chal,
        mae_diff=mae_chal - mae_champ,
        ci_low=float(low),
        ci_high=float(high),
        p_better=float(np.mean(diffs < 0)),
        n_boot=n_boot,
        n_units=units,
    )


def business_impact(y_true: ArrayLike, y_pred: ArrayLike, days: ArrayLike | None = None) -> dict[str, float]:
    """What the forecast's errors mean for supply planned to match it, per day (the spec's
    `BusinessFigure` names them in its own words: bikes short / idle for the rentals).

    `short_per_day`: demand not served because the forecast was too low (sum of max(y - y_hat, 0)).
    `idle_per_day`: supply put out but not used (sum of max(y_hat - y, 0)). Row by row,
    short + idle = n x MAE, so a lower MAE shrinks the sum; the split says which way the model errs,
    and an operator weighs the two by their own costs. `days` gives the day of each row; without it,
    every 24 rows count as one day.
    """
    y, p = _pair(y_true, y_pred)
    n_days = np.unique(np.asarray(days)).size if days is not None else y.size / HOURS_PER_DAY
    short, idle = float(np.maximum(y - p, 0).sum()), float(np.maximum(p - y, 0).sum())
    return {
        "days": float(n_days),
        "demand_per_day": float(y.sum() / n_days),
        "short_per_day": short / n_days,
        "idle_per_day": idle / n_days,
        "short_share_of_demand": short / float(y.sum()) if y.sum() else float("nan"),
    }
