"""Tree family: scikit-learn GradientBoostingRegressor on log1p(count), exported with skl2onnx.

GradientBoostingRegressor rather than HistGradientBoostingRegressor because skl2onnx 1.20 cannot
convert the latter under protobuf >= 7 (see docs/decisions/onnx-tree-converter.md). The log1p target
is undone inside the ONNX graph (Exp, Sub 1), so the exported model returns counts.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import onnx
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingRegressor

from ml.models.base import ONNX_INPUT, ONNX_OPSET, ONNX_OUTPUT, CheckpointStore, as_features, resolve_params

# Chosen by benchmarks/training_and_scoring.py: ~2 s to train on 2011, >= 250k rows/s in ONNX.
DEFAULTS: dict[str, Any] = {
    "n_estimators": 200,
    "learning_rate": 0.1,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 1,
    "subsample": 1.0,
    "seed": 0,
}


class GradientBoostedTrees:
    """Boosted trees; seconds to train, so ``checkpoints`` is accepted for the common interface and unused."""

    family = "trees"

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params = resolve_params(self.family, DEFAULTS, params)
        self._model: GradientBoostingRegressor | None = None
        self._n_features = 0

    def fit(
        self,
        X_train: np.ndarray,
        y_train: np.ndarray,
        X_val: np.ndarray,
        y_val: np.ndarray,
        checkpoints: CheckpointStore | None = None,
    ) -> Self:
        p = self.params
        self._model = GradientBoostingRegressor(
            n_estimators=p["n_estimators"],
            learning_rate=p["learning_rate"],
            max_depth=None,
            max_leaf_nodes=p["max_leaf_nodes"],
            min_samples_leaf=p["min_samples_leaf"],
            subsample=p["subsample"],
            random_state=p["seed"],
        ).fit(as_features(X_train), np.log1p(np.asarray(y_train, dtype=np.float64)))
        self._n_features = X_train.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.expm1(self._fitted().predict(as_features(X)))

    def to_onnx(self) -> bytes:
        proto = to_onnx(
            self._fitted(),
            initial_types=[(ONNX_INPUT, FloatTensorType([None, self._n_features]))],
            target_opset={"": ONNX_OPSET, "ai.onnx.ml": 3},
        )
        return _append_expm1(proto).SerializeToString()

    def _fitted(self) -> GradientBoostingRegressor:
        if self._model is None:
            raise RuntimeError("trees: call fit() first")
        return self._model


def _append_expm1(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Turn the graph's log1p-scale output into counts, named by the common ONNX contract."""
    graph = proto.graph
    log_pred = graph.output[0].name
    graph.initializer.append(helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]))
    graph.node.extend(
        [
            helper.make_node("Exp", [log_pred], ["exp_pred"], name="undo_log1p_exp"),
            helper.make_node("Sub", ["exp_pred", "one"], [ONNX_OUTPUT], name="undo_log1p_sub"),
        ]
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, [None, 1]))
    onnx.checker.check_model(proto)
    return proto
