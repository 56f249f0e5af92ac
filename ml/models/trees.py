"""Tree family: LightGBM gradient-boosted trees on log1p(count), exported with onnxmltools.

LightGBM rather than scikit-learn's GradientBoostingRegressor: refit every 30 days on the 2011-2012
bike data it reaches MAE 40.9 against the seasonal-naive 55.0, and trains in a fraction of the time
(docs/decisions/lightgbm-trees.md). A fixed number of trees (no early stopping), so
the recipe judged on the hold-out is exactly the recipe refit on the whole window for serving.
The log1p target is undone inside the ONNX graph (Exp, Sub 1), so the exported model returns counts.
"""

from __future__ import annotations

import re
from typing import Any, Self

import numpy as np
import onnx
from onnx import TensorProto, helper

from ml.heavy import heavy_import
from ml.models.base import ONNX_INPUT, ONNX_OUTPUT, CheckpointStore, as_features, resolve_params

# Chosen on the development periods of both shipped data sets (2011 rentals, Mar-Jun 2018 Seoul), refit
# every 7, 14 and 30 days: 15 leaves beat 31 by 1.5-1.8% on both and score 1,000 rows 1.3-1.5x faster; 100-300
# trees are within 1% of each other (benchmarks/tree_capacity.py, docs/decisions/lightgbm-trees.md).
DEFAULTS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 20,
    "subsample": 1.0,
    "colsample_bytree": 1.0,
    "seed": 0,
}


LIGHTGBM_OPSET = 15


class GradientBoostedTrees:
    """Boosted trees; seconds to train, so ``checkpoints`` is accepted for the common interface and unused."""

    family = "trees"

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params = resolve_params(self.family, DEFAULTS, params)
        self._model = None
        self._n_features = 0

    def refit_params(self) -> dict[str, Any]:
        """A fixed number of trees and no early stopping: the same recipe refits on any rows."""
        return dict(self.params)

    def fit(
        self,
        X_train: np.ndarray,
        y_train: np.ndarray,
        X_val: np.ndarray,
        y_val: np.ndarray,
        checkpoints: CheckpointStore | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> Self:
        lightgbm = heavy_import("lightgbm")

        p = self.params
        self._model = lightgbm.LGBMRegressor(
            n_estimators=p["n_estimators"],
            learning_rate=p["learning_rate"],
            num_leaves=p["num_leaves"],
            min_child_samples=p["min_child_samples"],
            subsample=p["subsample"],
            subsample_freq=1 if p["subsample"] < 1 else 0,
            colsample_bytree=p["colsample_bytree"],
            random_state=p["seed"],
            deterministic=True,
            force_row_wise=True,
            n_jobs=1,  # measured: LightGBM's thread pool makes small fits 3-10x slower on a shared 2-core machine
            verbose=-1,
        ).fit(as_features(X_train), np.log1p(np.asarray(y_train, dtype=np.float64)), sample_weight=sample_weight)
        self._model = _float32_thresholds(self._model.booster_)
        self._n_features = X_train.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.expm1(self._fitted().predict(as_features(X)))

    def to_onnx(self) -> bytes:
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        proto = convert_lightgbm(
            self._fitted(),
            initial_types=[(ONNX_INPUT, FloatTensorType([None, self._n_features]))],
            target_opset=LIGHTGBM_OPSET,  # onnxmltools 1.16 converts LightGBM up to opset 15
            zipmap=False,
        )
        return _append_expm1(proto).SerializeToString()

    def _fitted(self):
        if self._model is None:
            raise RuntimeError("trees: call fit() first")
        return self._model


def _float32_thresholds(booster):
    """The same trees with every split threshold rounded DOWN to a float32 value.

    Features are float32 and ONNX compares them with float32 thresholds, while LightGBM keeps double
    thresholds; rounding a double to the nearest float32 can land on a feature value just above it and
    flip the branch (measured: 105 off on one row of the bike data). For a float32 x, x <= t holds exactly
    when x <= the largest float32 <= t, so this changes no decision of the native model and makes the
    ONNX graph agree with it.
    """
    lightgbm = heavy_import("lightgbm")

    def fix(match: re.Match) -> str:
        values = np.array(match.group(1).split(" "), dtype=np.float64)
        down = values.astype(np.float32)
        down = np.where(down.astype(np.float64) > values, np.nextafter(down, np.float32(-np.inf)), down)
        return "threshold=" + " ".join(repr(float(v)) for v in down.astype(np.float64))

    text = re.sub(r"^threshold=(.*)$", fix, booster.model_to_string(), flags=re.MULTILINE)
    text = re.sub(r"^tree_sizes=.*\n", "", text, flags=re.MULTILINE)  # byte offsets; parsed without them
    return lightgbm.Booster(model_str=text)


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
