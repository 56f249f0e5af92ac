"""Model families by name, so pipelines and tuning pick one with a string and a params dict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ml.models.base import ONNX_INPUT, ONNX_OUTPUT, CheckpointStore, Model
from ml.models.mlp import MLP
from ml.models.trees import GradientBoostedTrees

FAMILIES: dict[str, Callable[[dict[str, Any] | None], Model]] = {
    GradientBoostedTrees.family: GradientBoostedTrees,
    MLP.family: MLP,
}


def make_model(family: str, params: dict[str, Any] | None = None) -> Model:
    """A fresh, unfitted model of ``family``; params not given take the family's defaults."""
    try:
        factory = FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}") from None
    return factory(params)


__all__ = ["FAMILIES", "ONNX_INPUT", "ONNX_OUTPUT", "CheckpointStore", "Model", "make_model"]
