"""The yardsticks of the self-retraining loop, computed directly (outside the asset graph) with the
same features, model family, parameters and window as the loop's served models: the seasonal-naive
forecast (no model), a model trained once, and the same recipe refit on a calendar (every N days;
every day is the costly upper bound)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from ml.features import build_features, feature_matrix
from ml.models import make_model
from ml.spec import UseCaseSpec


def _fit(spec: UseCaseSpec, features: pl.DataFrame, cutoff: date, window_days: int, family: str, params: dict):
    """The served recipe: every labelled day of the window before `cutoff`."""
    event = pl.col(spec.event_date)
    rows = features.filter((event >= cutoff - timedelta(days=window_days)) & (event < cutoff)
                           & pl.col(spec.target).is_not_null())
    X, y = feature_matrix(spec, rows), rows[spec.target].to_numpy().astype(float)
    return make_model(family, params).fit(X, y, X[-24:], y[-24:])


def baseline_predictions(spec: UseCaseSpec, validated: pl.DataFrame, first_cutoff: date, last_day: date,
                         family: str, params: dict, window_days: int = 90,
                         refit_every: dict[str, int] | None = None) -> pl.DataFrame:
    """Per row from `first_cutoff` to `last_day`: the label, the seasonal-naive forecast and one column
    per calendar policy (`name -> refit every N days`; `static` is trained once)."""
    refit_every = refit_every or {"static": 10**6, "daily": 1}
    features = build_features(spec, validated)
    event = pl.col(spec.event_date)
    models: dict[str, tuple[date, object]] = {}
    scored = []
    day = first_cutoff
    while day <= last_day:
        rows = features.filter(event == day)
        if rows.height:
            X = feature_matrix(spec, rows)
            columns = {}
            for name, every in refit_every.items():
                if name not in models or (day - models[name][0]).days >= every:
                    models[name] = (day, _fit(spec, features, day, window_days, family, params))
                columns[name] = np.clip(models[name][1].predict(X), 0, None)
            scored.append(rows.select(*spec.key, spec.target).with_columns(
                pl.Series("naive", seasonal_naive(spec, features, rows)),
                *(pl.Series(name, values) for name, values in columns.items()),
            ))
        day += timedelta(days=1)
    return pl.concat(scored)


def seasonal_naive(spec: UseCaseSpec, history: pl.DataFrame, rows: pl.DataFrame) -> np.ndarray:
    """The floor every model must beat: each row's target one season earlier (the same key
    `spec.seasonal_period_days` days before), looked up in `history`; NaN where that is unknown."""
    rest = [k for k in spec.key if k != spec.event_date]
    known = history.filter(pl.col(spec.target).is_not_null()).select(
        (pl.col(spec.event_date) + pl.duration(days=spec.seasonal_period_days)).alias(spec.event_date),
        *rest, pl.col(spec.target).cast(pl.Float64).alias("_naive"))
    joined = rows.select(spec.event_date, *rest).join(known, on=[spec.event_date, *rest], how="left",
                                                      maintain_order="left")
    return joined["_naive"].fill_null(float("nan")).to_numpy()
