"""Point-in-time training sets: a window of days before a cut-off, split by time.

The newest days of the window are the hold-out, so the model is always judged on the most recent
data it could have known about; validation sits just before it; everything older trains. No row on
or after the cut-off can enter.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from ml.spec import UseCaseSpec

SPLITS = ("train", "validation", "holdout")


@dataclass(frozen=True)
class Window:
    cutoff: date  # first day NOT in the training set
    days: int = 90
    validation_days: int = 14
    holdout_days: int = 14

    def __post_init__(self):
        if self.validation_days + self.holdout_days >= self.days:
            raise ValueError(f"window of {self.days} days leaves nothing to train on "
                             f"after {self.validation_days} validation and {self.holdout_days} hold-out days")

    @property
    def first_day(self) -> date:
        return self.cutoff - timedelta(days=self.days)

    def day_keys(self) -> list[str]:
        return [(self.first_day + timedelta(days=i)).isoformat() for i in range(self.days)]


def split_by_time(spec: UseCaseSpec, features: pl.DataFrame, window: Window) -> pl.DataFrame:
    """Rows of the window with a `split` column; rows outside the window are refused, not dropped."""
    event = pl.col(spec.event_date)
    outside = features.filter((event < window.first_day) | (event >= window.cutoff))
    if outside.height:
        raise ValueError(f"{outside.height} rows outside the window [{window.first_day}, {window.cutoff}): "
                         f"point-in-time correctness would be broken")
    holdout_start = window.cutoff - timedelta(days=window.holdout_days)
    validation_start = holdout_start - timedelta(days=window.validation_days)
    split = (pl.when(event >= holdout_start).then(pl.lit("holdout"))
             .when(event >= validation_start).then(pl.lit("validation"))
             .otherwise(pl.lit("train")))
    return features.with_columns(split.alias("split")).sort(list(spec.key))


def snapshot_digest(frame: pl.DataFrame) -> str:
    """Content hash of a training set: same rows and values give the same digest, on any machine."""
    h = hashlib.sha256()
    h.update(",".join(f"{k}:{v}" for k, v in frame.schema.items()).encode())
    h.update(frame.write_csv(float_precision=9).encode())
    return h.hexdigest()
