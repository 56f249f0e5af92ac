"""The one feature definition, used for training and for scoring alike (no training/serving skew).

Features are polars expressions derived from the spec's input columns: every input column as a
float, sin/cos for cyclic columns, one-hot indicators for categorical columns with more than two
values. Leakage columns, the target, row ids and the event date are never inputs. Lags of the
target are left out on purpose: at scoring time yesterday's labels may not have arrived, so a lag
would be point-in-time incorrect unless served from a label store.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from ml.spec import UseCaseSpec


def feature_expressions(spec: UseCaseSpec) -> list[pl.Expr]:
    exprs: list[pl.Expr] = []
    for c in spec.input_columns:
        value = pl.col(c.name).cast(pl.Float32)
        exprs.append(pl.col(c.name))  # as typed; `feature_matrix` makes every feature float32
        if c.period:
            angle = value * (2 * math.pi / c.period)
            exprs += [angle.sin().alias(f"{c.name}_sin"), angle.cos().alias(f"{c.name}_cos")]
        if c.categorical and c.allowed and len(c.allowed) > 2:
            exprs += [(pl.col(c.name) == v).cast(pl.Float32).alias(f"{c.name}_{v}") for v in c.allowed]
    return exprs


def feature_names(spec: UseCaseSpec) -> list[str]:
    return [e.meta.output_name() for e in feature_expressions(spec)]


def build_features(spec: UseCaseSpec, validated: pl.DataFrame) -> pl.DataFrame:
    """Key columns, then features, then the target when the frame has it (training) — same code for scoring."""
    names = set(feature_names(spec))
    keys = [c for c in spec.key if c not in names]
    target = [spec.target] if spec.target in validated.columns else []
    return validated.select(*keys, *feature_expressions(spec), *target)


def feature_matrix(spec: UseCaseSpec, features: pl.DataFrame) -> np.ndarray:
    """The float32 matrix a model takes, columns in `feature_names(spec)` order."""
    return features.select(feature_names(spec)).to_numpy().astype(np.float32, copy=False)


def leakage_in_features(spec: UseCaseSpec) -> list[str]:
    """Feature names that are, or are derived from, the target or a leakage column. Must be empty."""
    banned = {spec.target, *spec.leakage}
    return [f for f in feature_names(spec) if f in banned or f.split("_")[0] in banned]


def feature_ranges(spec: UseCaseSpec) -> dict[str, tuple[float, float]]:
    """The range every feature must stay in, derived from the spec's column rules."""
    ranges: dict[str, tuple[float, float]] = {}
    for c in spec.input_columns:
        values = c.allowed or ()
        lo = c.min if c.min is not None else (min(values) if values else float("-inf"))
        hi = c.max if c.max is not None else (max(values) if values else float("inf"))
        ranges[c.name] = (lo, hi)
        if c.period:
            ranges[f"{c.name}_sin"] = ranges[f"{c.name}_cos"] = (-1.0, 1.0)
        if c.categorical and c.allowed and len(c.allowed) > 2:
            ranges.update({f"{c.name}_{v}": (0.0, 1.0) for v in c.allowed})
    return ranges


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
        col = features[name]
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
