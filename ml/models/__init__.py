"""Model families by name, so pipelines and tuning pick one with a string and a params dict."""

from __future__ import annotations

import importlib
from typing import Any

from ml.models.base import ONNX_INPUT, ONNX_OUTPUT, CheckpointStore, Model

# Family name -> "module:class", imported when a model is made: torch takes seconds to import, and
# most processes that load the definitions (the webserver, sensors, scoring) never build a model.
FAMILIES: dict[str, str] = {
    "trees": "ml.models.trees:GradientBoostedTrees",
    "mlp": "ml.models.mlp:MLP",
}


def make_model(family: str, params: dict[str, Any] | None = None) -> Model:
    """A fresh, unfitted model of ``family``; params not given take the family's defaults."""
    try:
        module, _, name = FAMILIES[family].partition(":")
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}") from None
    return getattr(importlib.import_module(module), name)(params)


__all__ = ["FAMILIES", "ONNX_INPUT", "ONNX_OUTPUT", "CheckpointStore", "Model", "make_model"]
