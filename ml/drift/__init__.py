"""Dagster-free data drift: reference sketches, thresholds from sampling noise, effect-size verdicts.

Build `ReferenceStats` once from the training frame (`build_reference`: thresholds calibrated on
windows of random reference days, the size of the windows to be judged), store it as JSON
(`to_dict` / `from_dict`), then `compare` each window's frame against it.
"""

from ml.drift.calibration import build_reference
from ml.drift.reference import ReferenceStats
from ml.drift.report import ColumnDrift, DriftReport, compare

__all__ = ["ColumnDrift", "DriftReport", "ReferenceStats", "build_reference", "compare"]
