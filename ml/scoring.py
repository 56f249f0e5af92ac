"""The scoring path: what a model sees in production, where labels have not arrived."""

from __future__ import annotations

import polars as pl

from ml.features import build_features
from ml.spec import UseCaseSpec


def scoring_features(spec: UseCaseSpec, validated: pl.DataFrame) -> pl.DataFrame:
    """Features built from inputs only: the target and leakage columns are removed first, so any
    feature that secretly depended on them would break here and show up as skew."""
    unlabeled = validated.drop([c for c in (spec.target, *spec.leakage) if c in validated.columns])
    return build_features(spec, unlabeled)
