"""Dagster-free data drift: reference sketches, out-of-fold thresholds, effect-size verdicts.

Build `ReferenceStats` once from the training frame (`build_reference`), store it as JSON
(`to_dict` / `from_dict`), then `compare` each day's frame against it.
"""

from ml.drift.calibration import build_reference, chunk_statistics
from ml.drift.reference import ReferenceStats
from ml.drift.report import ColumnDrift, DriftReport, compare, render_psi_png

__all__ = ["ColumnDrift", "DriftReport", "ReferenceStats", "build_reference", "chunk_statistics",
           "compare", "render_psi_png"]
