"""Score from ONNX bytes only: what is served is exactly what was validated, and no pickle is ever loaded."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from ml.heavy import heavy_import
from ml.models.base import as_features

# On several threads, ONNX Runtime (1.31) splits each row's sum over the trees of a tree ensemble for
# batches of more than 50 rows, and the rounding then depends on the batch: the same row scored up to
# 2e-3 bikes apart alone and in a 1,000-row request (a day of a use case with more than 50 rows a day
# would score differently in the batch asset and online, row by row). A tree ensemble is therefore
# scored on one thread: the same bits in any batch, in any tier. For 1,000 rows that costs speed back
# to back and gains some after an idle spell (benchmarks/results/tree_scoring.md).
TREE_OPS = frozenset({"TreeEnsemble", "TreeEnsembleRegressor", "TreeEnsembleClassifier"})


def is_tree_ensemble(onnx_bytes: bytes) -> bool:
    graph = heavy_import("onnx").load_model_from_string(onnx_bytes).graph
    return any(node.op_type in TREE_OPS for node in graph.node)


def _session_options(threads: int | None) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or os.cpu_count() or 1
    opts.inter_op_num_threads = 1  # the graphs are a single chain; parallelism is within operators
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle workers would otherwise spin after each call and steal CPU from the rest of the process.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


class OnnxModel:
    """A CPU onnxruntime session over a model that follows the ``ml.models.base`` ONNX contract.

    A tree ensemble gets one thread, whatever is asked: each row scores the same bits in any batch
    (see TREE_OPS).
    """

    def __init__(self, onnx_bytes: bytes, threads: int | None = None, batch_rows: int = 65_536) -> None:
        self.trees = is_tree_ensemble(onnx_bytes)
        if self.trees:
            threads = 1
        self.session = ort.InferenceSession(onnx_bytes, _session_options(threads), providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name
        self._batch_rows = batch_rows

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1-D float64 predictions, comparable with a native model's ``predict``.

        Large inputs go through in ``batch_rows`` slices: activations stay cache-sized and memory bounded
        (measured ~1.5x faster than one 1M-row call for the MLP).
        """
        X = as_features(X)
        out = np.empty(len(X), dtype=np.float64)
        for start in range(0, len(X), self._batch_rows):
            rows = X[start : start + self._batch_rows]
            out[start : start + len(rows)] = self.session.run(None, {self._input: rows})[0].ravel()
        return out


@dataclass(frozen=True)
class Parity:
    """How far ONNX strays from the native model; relative to max(|native|, 1) so zero counts don't explode it."""

    max_abs: float
    max_rel: float
    tolerance: float
    passed: bool


def parity(native_pred: np.ndarray, onnx_pred: np.ndarray, tolerance: float) -> Parity:
    native = np.asarray(native_pred, dtype=np.float64).ravel()
    diff = np.abs(native - np.asarray(onnx_pred, dtype=np.float64).ravel())
    max_abs = float(diff.max(initial=0.0))
    max_rel = float((diff / np.maximum(np.abs(native), 1.0)).max(initial=0.0))
    return Parity(max_abs, max_rel, tolerance, passed=bool(max_rel <= tolerance))


@dataclass(frozen=True)
class Servability:
    """What a serving decision needs: does it load, how big, how fast per 1,000 rows."""

    size_bytes: int
    load_seconds: float
    latency_ms_per_1k: float


def servability(onnx_bytes: bytes, X_sample: np.ndarray, repeats: int = 20, threads: int | None = None) -> Servability:
    """Load, warm up, then take the median latency of scoring a 1,000-row batch drawn from ``X_sample``."""
    start = time.perf_counter()
    scorer = OnnxModel(onnx_bytes, threads)
    load_seconds = time.perf_counter() - start
    batch = as_features(np.resize(X_sample, (1000, X_sample.shape[1])))
    scorer.predict(batch)
    timings = []
    for _ in range(repeats):
        t = time.perf_counter()
        scorer.predict(batch)
        timings.append(time.perf_counter() - t)
    return Servability(len(onnx_bytes), load_seconds, float(np.median(timings)) * 1000.0)
