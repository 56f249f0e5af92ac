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
        exprs.append(value.alias(c.name))
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
    carried = [c for c in (*spec.key, spec.target) if c in validated.columns]
    frame = validated.select(*[pl.col(c) for c in spec.key], *feature_expressions(spec),
                             *[pl.col(c) for c in carried if c not in spec.key])
    return frame


def feature_matrix(spec: UseCaseSpec, features: pl.DataFrame) -> np.ndarray:
    """The float32 matrix a model takes, columns in `feature_names(spec)` order."""
    return features.select(feature_names(spec)).to_numpy().astype(np.float32, copy=False)


def leakage_in_features(spec: UseCaseSpec) -> list[str]:
    """Feature names that are, or are derived from, the target or a leakage column. Must be empty."""
    banned = {spec.target, *spec.leakage}
    return [f for f in feature_names(spec) if f in banned or f.split("_")[0] in banned]
