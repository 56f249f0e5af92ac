"""Build the reference and calibrate per-column thresholds, out of fold, on its own chunks.

A fixed PSI 0.2 means different things for 24 rows and for a million: sampling noise alone
grows as the batch shrinks. So each chunk of the reference period (a day, a week: use chunks the
size of the batches that will be monitored) is scored exactly as `compare` scores a current
frame, but against the reference counts MINUS that chunk, so a chunk never vouches for itself.
The discretisation (bin edges, KS support) stays that of the full reference; every frequency
and CDF value is out of fold, and for KS on an exact support this equals scipy's `ks_2samp`
between the chunk and the rest.

Threshold per column and statistic = `margin` x the `quantile` of the chunks' absolute values
(default 1.2 x the 95th percentile: the 95th ignores the odd storm or holiday in the reference,
the 20 % margin keeps the false alarm rate under ~5 % per statistic), never below `FLOORS`
(changes too small to act on, e.g. PSI < 0.01, even for a perfectly stable reference). With
fewer than `MIN_CHUNKS` chunks the fixed `FALLBACK_THRESHOLDS` are kept. A threshold above a
statistic's maximum (KS 1, JS ln 2) says that, on chunks this small, the statistic cannot tell
drift from day-to-day variation (a single day's temperatures vs a season); the others decide.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import polars as pl

from ml.drift.measure import count, reference_counts, score
from ml.drift.reference import DECISIVE, ReferenceStats
from ml.drift.sketch import Groups, summarise

MIN_CHUNKS = 5
FLOORS = {"psi": 0.01, "js": 0.005, "ks": 0.01, "missing": 0.01}


def chunk_statistics(reference: ReferenceStats, frame: pl.DataFrame,
                     chunk_column: str) -> dict[str, dict[str, np.ndarray]]:
    """Per column, per statistic: one out-of-fold value per chunk (chunks in sorted order).

    `frame` must be the frame `reference` was summarised from.
    """
    if frame[chunk_column].has_nulls():
        raise ValueError(f"chunk column {chunk_column!r} has nulls")
    groups = Groups.of(frame[chunk_column].rank("dense").cast(pl.Int64).to_numpy() - 1)
    out = {}
    for name, col in reference.columns.items():
        chunk = count(col, frame[name], groups)
        total = reference_counts(col)
        rest = {key: total[key] - chunk[key] for key in total}
        out[name] = score(rest, chunk, pvalues=False)
    return out


def calibrate(reference: ReferenceStats, frame: pl.DataFrame, chunk_column: str,
              quantile: float = 0.95, margin: float = 1.2) -> ReferenceStats:
    """Set every column's thresholds from its out-of-fold chunk statistics (in place)."""
    n_chunks = frame[chunk_column].n_unique()
    if n_chunks < MIN_CHUNKS:
        return reference
    for name, stats in chunk_statistics(reference, frame, chunk_column).items():
        col = reference.columns[name]
        for stat in DECISIVE[col.sketch.kind]:
            values = np.abs(stats[stat])
            high = np.nanquantile(values, quantile) if np.isfinite(values).any() else 0.0
            col.thresholds[stat] = float(max(FLOORS[stat], margin * high))
    reference.n_chunks = n_chunks
    reference.threshold_rule = f"{margin} x q{quantile} of {n_chunks} out-of-fold chunks"
    return reference


def build_reference(frame: pl.DataFrame, columns: Sequence[str], categorical: Collection[str] = (),
                    *, prediction: str | None = None, target: str | None = None,
                    chunk_column: str | None = None, n_bins: int = 10, max_support: int = 5000,
                    quantile: float = 0.95, margin: float = 1.2) -> ReferenceStats:
    """Sketch `columns` of the reference frame once and calibrate thresholds on its chunks.

    `prediction` and `target` (if given, and in `columns`) get those roles; the rest are
    features. Without `chunk_column` the fixed fallback thresholds are used.
    """
    roles = {c: "feature" for c in columns}
    roles.update({c: r for c, r in ((prediction, "prediction"), (target, "target")) if c in roles})
    reference = summarise(frame, list(columns), set(categorical), roles, n_bins, max_support)
    if chunk_column is not None:
        calibrate(reference, frame, chunk_column, quantile, margin)
    return reference
