"""Build the reference and calibrate per-column thresholds on resampled windows of random days.

A bar must measure sampling noise at the size of the window that will be judged, not the
reference's own seasonality. Contiguous weekly chunks of a 90-day training window carry its
season (January vs March temperatures), so their bars were enormous: April 2011 against a
Jan-Mar 2011 reference had `temp` PSI 4.86 under a bar of 5.52. Instead, each of `n_resamples`
windows is `window_days` days drawn at random, without replacement, from the reference: a window
of the reference's own process, with its day-to-day variation (weather) but spread over the
season. It is scored exactly as `compare` scores a current frame, against the reference counts
MINUS those days, so a window never vouches for itself. Every column is counted once per day;
a window's counts are a sum of day counts, so all resamples are scored in one vectorised call.
The discretisation (bin edges, KS support, the Wasserstein unit) stays that of the full
reference.

A column drifts when ANY of its decisive statistics passes its bar, so the false alarms of one
column are the union over its statistics. Each column's bars are the q-quantiles of its
resampled |statistics|, with the smallest common q (on a grid from 1 - alpha to 1) at which at
most `alpha` of the resamples pass any bar. Bars never go below `FLOORS` (changes too small to
act on, e.g. PSI < 0.01, even for a perfectly stable reference). With fewer than
`2 x window_days` reference days the fixed `FALLBACK_THRESHOLDS` are kept.

The Wasserstein floor, 0.025 reference standard deviations, is the KS floor carried over: a
normal's mean shift of 0.025 sd moves its CDF by 0.01 (KS = 0.4 x shift) and its mass by 0.025 sd
(W1 = shift), so W1 fires on no location change the other floors call too small to act on, yet
it does on what they are blind to: a few percent of the rows moving far into a tail (1.5 % of the
rows moved into a tail 50 times wider is W1 0.16 with KS 0.008, the benchmark's `outliers`).
Evidently's fixed 0.1 is an effect-size bar; ours is the noise at the judged window size, so a
real 10 % scale change of a lognormal (W1 0.08) still counts where a window is large enough.

`alpha` (1 %) is the rate on the reference's own days; fresh windows run a little higher, since
90 days are themselves a sample of the weather: measured ~1.5 % a column (tests' simulation).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import polars as pl

from ml.drift.measure import count, reference_counts, score
from ml.drift.reference import DECISIVE, ColumnRef, ReferenceStats
from ml.drift.sketch import Groups, per_column, summarise

FLOORS = {"psi": 0.01, "js": 0.005, "ks": 0.01, "wasserstein": 0.025, "missing": 0.01}
QUANTILE_STEPS = 101  # grid of common quantile levels between 1 - alpha and 1


def day_codes(frame: pl.DataFrame, day_column: str) -> np.ndarray:
    """0-based day of every row in sorted day order (timestamps are cut to their date)."""
    days = frame[day_column]
    if days.has_nulls():
        raise ValueError(f"day column {day_column!r} has nulls")
    if days.dtype == pl.Datetime:
        days = days.dt.date()
    return days.rank("dense").cast(pl.Int64).to_numpy() - 1


def window_draws(n_days: int, window_days: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """(n_resamples, window_days) day indices, each row drawn without replacement."""
    keys = np.random.default_rng(seed).random((n_resamples, n_days))
    return np.argsort(keys, axis=1)[:, :window_days]


def window_statistics(reference: ReferenceStats, frame: pl.DataFrame, codes: np.ndarray,
                      draws: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per column, per statistic: one value per window of `draws` (rows of day indices into
    `codes`, the rows' days), scored against the reference minus the window's days.

    `frame` must be the frame `reference` was summarised from.
    """
    groups = Groups.of(codes)

    def column(col: ColumnRef) -> dict[str, np.ndarray]:
        window = {k: v[draws].sum(axis=1) for k, v in count(col, frame[col.name], groups).items()}
        total = reference_counts(col)
        return score({k: total[k] - window[k] for k in total}, window, pvalues=False)

    columns = reference.columns.values()
    return dict(zip(reference.columns, per_column(column, columns, frame.height)))


def bars(values: np.ndarray, floors: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Per-statistic bars from (resamples, statistics) |values|: the q-quantiles, floored, at
    the smallest q for which at most `alpha` of the resamples pass any bar; and that q."""
    levels = np.linspace(1 - alpha, 1, QUANTILE_STEPS)
    candidates = np.maximum(np.quantile(values, levels, axis=0), floors)  # (levels, statistics)
    union = (values[None] > candidates[:, None]).any(axis=-1).mean(axis=-1)
    best = int(np.argmax(union <= alpha))  # the last level (the maximum) always qualifies
    return candidates[best], float(levels[best])


def calibrate(reference: ReferenceStats, frame: pl.DataFrame, day_column: str,
              window_days: int = 7, n_resamples: int = 300, alpha: float = 0.01,
              seed: int = 0) -> ReferenceStats:
    """Set every column's thresholds from resampled windows of random reference days (in place)."""
    codes = day_codes(frame, day_column)
    n_days = int(codes.max()) + 1 if codes.size else 0
    if n_days < 2 * window_days:
        return reference
    draws = window_draws(n_days, window_days, n_resamples, seed)
    levels = []
    for name, stats in window_statistics(reference, frame, codes, draws).items():
        col = reference.columns[name]
        decisive = DECISIVE[col.sketch.kind]
        # NaN: the window has no value of the column, so nothing to fire on
        values = np.nan_to_num(np.abs(np.stack([stats[s] for s in decisive], axis=-1)), nan=0.0)
        thresholds, level = bars(values, np.array([FLOORS[s] for s in decisive]), alpha)
        col.thresholds.update(zip(decisive, thresholds.tolist()))
        levels.append(level)
    reference.n_days, reference.window_days, reference.n_resamples = n_days, window_days, n_resamples
    reference.threshold_rule = (
        f"per column q{min(levels):.3g}-q{max(levels):.3g} of {n_resamples} windows of "
        f"{window_days} random reference days (out of fold), so at most {alpha:.1%} of them "
        "pass any bar")
    return reference


def build_reference(frame: pl.DataFrame, columns: Sequence[str], categorical: Collection[str] = (),
                    *, prediction: str | None = None, target: str | None = None,
                    day_column: str | None = None, window_days: int = 7, n_resamples: int = 300,
                    alpha: float = 0.01, seed: int = 0, n_bins: int = 10,
                    max_support: int = 1000) -> ReferenceStats:
    """Sketch `columns` of the reference frame once and calibrate thresholds on random-day windows
    of `window_days`, the size of the windows `compare` will judge.

    `prediction` and `target` (if given, and in `columns`) get those roles; the rest are
    features. Without `day_column` the fixed fallback thresholds are used.
    """
    roles = {c: "feature" for c in columns}
    roles.update({c: r for c, r in ((prediction, "prediction"), (target, "target")) if c in roles})
    reference = summarise(frame, list(columns), set(categorical), roles, n_bins, max_support)
    if day_column is not None:
        calibrate(reference, frame, day_column, window_days, n_resamples, alpha, seed)
    return reference
