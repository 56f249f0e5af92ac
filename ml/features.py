"""The one feature definition, used for training and for scoring alike (no training/serving skew).

Features are polars expressions derived from the spec's input columns: every numeric or boolean
input column as a float, sin/cos for cyclic columns, one-hot indicators for categorical columns with
more than two values; text categories one-hot or as their level's index (declared levels, so the
feature list never depends on the data); calendar parts of the event column (hour, weekday, month,
day of year) as their value and sin/cos. Leakage columns, the target, row ids and the event date are never inputs. Lags of the
target are left out on purpose: at scoring time yesterday's labels may not have arrived, so a lag
would be point-in-time incorrect unless served from a label store.
"""

from __future__ import annotations

import math
import re

import numpy as np
import polars as pl

from ml.spec import CALENDAR_PARTS, Column, UseCaseSpec

Feature = tuple[pl.Expr, tuple[float, float]]  # the expression and the range its values stay in
_UNIT = (0.0, 1.0)
_CALENDAR = {
    "hour": lambda t: t.dt.hour(),
    "weekday": lambda t: t.dt.weekday() - 1,  # Monday 0 ... Sunday 6
    "month": lambda t: t.dt.month(),
    "day_of_year": lambda t: t.dt.ordinal_day(),
}


def _cyclic(value: pl.Expr, period: float, name: str) -> list[Feature]:
    """sin/cos of a cyclic value, so the end of the cycle sits next to its start (23h next to 0h)."""
    angle = value.cast(pl.Float32) * (2 * math.pi / period)
    return [(angle.sin().alias(f"{name}_sin"), (-1.0, 1.0)), (angle.cos().alias(f"{name}_cos"), (-1.0, 1.0))]


def _level_name(level) -> str:
    """A level as a feature-name suffix: "No Holiday" -> "no_holiday"; numbers as written (3, -1)."""
    return re.sub(r"[^0-9a-z]+", "_", level.lower()).strip("_") if isinstance(level, str) else str(level)


def _indicators(c: Column) -> list[Feature]:
    return [((pl.col(c.name) == v).cast(pl.Float32).alias(f"{c.name}_{_level_name(v)}"), _UNIT) for v in c.allowed]


def category_level(c: Column, frame: pl.DataFrame) -> pl.Expr:
    """A text category's level on a validated frame (the column itself) or on a feature table, where it
    is one indicator per level or the level's index: what slices and reports read it back from."""
    if c.name in frame.columns and frame.schema[c.name] == pl.String:
        return pl.col(c.name)
    levels = list(c.allowed)
    if c.encoding == "ordinal":
        return pl.col(c.name).replace_strict(list(range(len(levels))), levels, default=None, return_dtype=pl.String)
    level = pl.lit(None, dtype=pl.String)
    for v in reversed(levels):
        level = pl.when(pl.col(f"{c.name}_{_level_name(v)}") == 1).then(pl.lit(v)).otherwise(level)
    return level


def _column_features(c: Column) -> list[Feature]:
    if c.dtype == "category":
        if c.encoding == "ordinal":
            levels = list(c.allowed)
            index = pl.col(c.name).replace_strict(levels, list(range(len(levels))), return_dtype=pl.Int32)
            return [(index.alias(c.name), (0.0, len(levels) - 1.0))]
        return _indicators(c)
    values = c.allowed or ((0, 1) if c.dtype == "bool" else ())
    lo = c.min if c.min is not None else (min(values) if values else float("-inf"))
    hi = c.max if c.max is not None else (max(values) if values else float("inf"))
    out = [(pl.col(c.name), (lo, hi))]  # as typed; `feature_matrix` makes every feature float32
    if c.period:
        out += _cyclic(pl.col(c.name), c.period, c.name)
    if c.categorical and c.allowed and len(c.allowed) > 2:
        out += _indicators(c)
    return out


def _calendar_part(spec: UseCaseSpec, part: str, name: str) -> list[Feature]:
    lo, hi, period = CALENDAR_PARTS[part]
    value = _CALENDAR[part](pl.col(spec.event_date))
    return [(value.alias(name), (lo, hi)), *_cyclic(value, period, name)]


def _sourced_features(spec: UseCaseSpec) -> list[tuple[str, Feature]]:
    """(source, feature): the input column a feature is derived from, or the calendar feature's name."""
    return [(c.name, f) for c in spec.input_columns for f in _column_features(c)] + [
        (name, f) for part, name in zip(spec.calendar, spec.calendar_features) for f in _calendar_part(spec, part, name)]


def _features(spec: UseCaseSpec) -> list[Feature]:
    return [f for _, f in _sourced_features(spec)]


def feature_sources(spec: UseCaseSpec) -> dict[str, str]:
    """Feature name -> the input column it is derived from (`hour_sin` -> `hour`, `seasons_winter` ->
    `seasons`), or, for a calendar feature and its sin/cos, the calendar feature (`date_month`)."""
    return {expr.meta.output_name(): source for source, (expr, _) in _sourced_features(spec)}


def feature_expressions(spec: UseCaseSpec) -> list[pl.Expr]:
    return [expr for expr, _ in _features(spec)]


def feature_names(spec: UseCaseSpec) -> list[str]:
    return [e.meta.output_name() for e in feature_expressions(spec)]


def build_features(spec: UseCaseSpec, validated: pl.DataFrame) -> pl.DataFrame:
    """Key columns, then features, then the target when the frame has it (training) — same code for scoring."""
    names = set(feature_names(spec))
    keys = [c for c in spec.key if c not in names]
    target = [spec.target] if spec.target in validated.columns else []
    return validated.select(*keys, *feature_expressions(spec), *target)


# Rows converted at a time by `feature_matrix`: the wide intermediate stays small.
MATRIX_BLOCK_ROWS = 65_536


def feature_matrix(spec: UseCaseSpec, features: pl.DataFrame) -> np.ndarray:
    """The float32 matrix a model takes (C order), columns in `feature_names(spec)` order.

    Filled a block of rows at a time: converting the whole table at once went through the columns'
    common type (float64) and a float32 copy, three times the matrix's memory at 10M rows.
    Each block takes exactly that path, so the values are the same.
    """
    table = features.select(feature_names(spec))
    out = np.empty(table.shape, dtype=np.float32)
    for start in range(0, table.height, MATRIX_BLOCK_ROWS):
        block = table.slice(start, MATRIX_BLOCK_ROWS).to_numpy()
        out[start : start + len(block)] = block.astype(np.float32, copy=False)
    return out


def leakage_in_features(spec: UseCaseSpec) -> list[str]:
    """Feature names that are, or are derived from, the target or a leakage column. Must be empty."""
    banned = {spec.target, *spec.leakage}
    return [f for f in feature_names(spec) if f in banned or f.split("_")[0] in banned]


def feature_ranges(spec: UseCaseSpec) -> dict[str, tuple[float, float]]:
    """The range every feature must stay in, derived from the spec's column rules."""
    return {expr.meta.output_name(): bounds for expr, bounds in _features(spec)}


def feature_contract_violations(spec: UseCaseSpec, features: pl.DataFrame) -> list[str]:
    """Leakage, missing features, nulls and out-of-range values; an empty list means the contract holds."""
    out = [f"leakage: {name} is derived from the target or a leakage column" for name in leakage_in_features(spec)]
    out += [f"leakage: column {c} present in the feature table" for c in spec.leakage if c in features.columns]
    missing = [f for f in feature_names(spec) if f not in features.columns]
    out += [f"missing feature {f}" for f in missing]
    eps = 1e-6
    for name, (lo, hi) in feature_ranges(spec).items():
        if name in missing:
            continue
        col = features[name].cast(pl.Float64)  # booleans and indices too: null/NaN and range judged alike
        if col.null_count() or col.is_nan().any():
            out.append(f"{name}: {col.null_count() + int(col.is_nan().sum())} null/NaN values")
        elif features.height and (col.min() < lo - eps or col.max() > hi + eps):
            out.append(f"{name}: values in [{col.min()}, {col.max()}] outside [{lo}, {hi}]")
    return out


def skew(training: pl.DataFrame, scoring: pl.DataFrame, spec: UseCaseSpec) -> dict[str, float]:
    """Max absolute difference per feature between two feature tables of the same rows (0 = no skew)."""
    if training.height != scoring.height:
        return {"__rows__": float(abs(training.height - scoring.height))}
    names = feature_names(spec)
    a = training.sort(list(spec.key)).select(pl.col(names).cast(pl.Float64))
    b = scoring.sort(list(spec.key)).select(pl.col(names).cast(pl.Float64))
    diff = (a - b).select(pl.all().abs().fill_null(float("inf")).fill_nan(float("inf")).max())
    return {f: float(diff[f][0] or 0.0) for f in names}
