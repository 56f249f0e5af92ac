"""The two yardsticks of the self-retraining loop, computed directly (outside the asset graph) with
the same features, model family, parameters and window policy: a static model trained once, and a
model retrained every day (the costly upper bound)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from ml.features import build_features, feature_matrix
from ml.models import make_model
from ml.spec import UseCaseSpec
from ml.training_set import Window, split_by_time


def _fit(spec: UseCaseSpec, features: pl.DataFrame, window: Window, family: str, params: dict):
    event = pl.col(spec.event_date)
    frame = split_by_time(spec, features.filter((event >= window.first_day) & (event < window.cutoff)), window)
    part = {s: frame.filter(pl.col("split") == s) for s in ("train", "validation")}
    X = {s: feature_matrix(spec, f) for s, f in part.items()}
    y = {s: f[spec.target].to_numpy().astype(float) for s, f in part.items()}
    return make_model(family, params).fit(X["train"], y["train"], X["validation"], y["validation"])


def baseline_predictions(spec: UseCaseSpec, validated: pl.DataFrame, first_cutoff: date, last_day: date,
                         family: str, params: dict, window_days: int = 90, validation_days: int = 14,
                         holdout_days: int = 14) -> pl.DataFrame:
    """Per row from `first_cutoff` to `last_day`: the label, the static and the daily-retrained prediction."""
    features = build_features(spec, validated)
    def window(cutoff: date) -> Window:
        return Window(cutoff, window_days, validation_days, holdout_days)

    static = _fit(spec, features, window(first_cutoff), family, params)
    event = pl.col(spec.event_date)
    scored = []
    day = first_cutoff
    while day <= last_day:
        rows = features.filter(event == day)
        if rows.height:
            X = feature_matrix(spec, rows)
            daily = _fit(spec, features, window(day), family, params)
            scored.append(rows.select(spec.event_date, spec.target).with_columns(
                pl.Series("static", np.clip(static.predict(X), 0, None)),
                pl.Series("daily", np.clip(daily.predict(X), 0, None)),
            ))
        day += timedelta(days=1)
    return pl.concat(scored)
