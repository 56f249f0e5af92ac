"""The contract every model family meets, so the pipeline can train, export and score any of them by name.

ONNX contract shared by all families: one input named ``features`` (float32, shape [None, n_features],
raw feature values in the feature builder's column order) and one output named ``prediction``
(float32, shape [N, 1], the predicted count on the original scale: no scaling left for the caller).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, Self

import numpy as np

ONNX_INPUT = "features"
ONNX_OUTPUT = "prediction"
ONNX_OPSET = 17

# (epoch, train_loss, val_loss): what an iterative family reports after each epoch when its ``fit`` takes
# an ``on_epoch`` keyword (the MLP: MSE of log1p(count) on the training rows, and the validation MAE in
# counts that early stopping watches). Families without epochs (trees) do not take it.
EpochCallback = Callable[[int, float, float], None]


class CheckpointStore(Protocol):
    """Where an iterative trainer keeps per-epoch state so an interrupted run resumes instead of restarting."""

    def save(self, epoch: int, payload: bytes) -> None: ...

    def latest(self) -> tuple[int, bytes] | None: ...


class Model(Protocol):
    """A model family instance: configured by ``params``, trained by ``fit``, shipped by ``to_onnx``."""

    family: str
    params: dict[str, Any]

    def fit(
        self,
        X_train: np.ndarray,
        y_train: np.ndarray,
        X_val: np.ndarray,
        y_val: np.ndarray,
        checkpoints: CheckpointStore | None = None,
    ) -> Self: ...

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1-D float64 predictions on the count scale."""
        ...

    def to_onnx(self) -> bytes: ...

    def refit_params(self) -> dict[str, Any]:
        """The params that refit this fitted recipe on rows including its validation rows (the served
        fit): whatever it chose by watching the validation rows (an epoch count) becomes fixed."""
        ...


def resolve_params(family: str, defaults: dict[str, Any], params: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with ``params``; an unknown key is an error, not a silently ignored typo."""
    params = dict(params or {})
    unknown = set(params) - set(defaults)
    if unknown:
        raise ValueError(f"{family}: unknown params {sorted(unknown)}; known: {sorted(defaults)}")
    return defaults | params


def as_features(X: np.ndarray) -> np.ndarray:
    """The float32, C-contiguous matrix both native models and ONNX sessions expect."""
    return np.ascontiguousarray(X, dtype=np.float32)
