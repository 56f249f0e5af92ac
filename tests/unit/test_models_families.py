"""Model families: ONNX export contract and parity, reproducibility, MLP checkpoint resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import polars as pl
import pytest

from ml.models import FAMILIES, ONNX_INPUT, ONNX_OUTPUT, make_model
from ml.onnx_scoring import OnnxModel, parity, servability

DATA = Path(__file__).resolve().parents[2] / "data" / "bike_sharing_hourly.csv"
FEATURES = [
    "season",
    "mnth",
    "hr",
    "holiday",
    "weekday",
    "workingday",
    "weathersit",
    "temp",
    "atemp",
    "hum",
    "windspeed",
]
FAST_PARAMS = {
    "trees": {"n_estimators": 30},
    "mlp": {"epochs": 8, "hidden": 32, "layers": 2, "batch_size": 64, "learning_rate": 1e-2},
}


@pytest.fixture(scope="module")
def split() -> tuple[np.ndarray, ...]:
    frame = pl.read_csv(DATA, n_rows=2500)
    X = frame.select(FEATURES).to_numpy().astype(np.float32)
    y = frame["cnt"].to_numpy().astype(np.float64)
    return X[:2000], y[:2000], X[2000:], y[2000:]


class MemoryCheckpoints:
    def __init__(self) -> None:
        self.saved: dict[int, bytes] = {}

    def save(self, epoch: int, payload: bytes) -> None:
        self.saved[epoch] = payload

    def latest(self) -> tuple[int, bytes] | None:
        return max(self.saved.items()) if self.saved else None


def test_every_registered_family_has_fast_test_params():
    assert set(FAMILIES) == set(FAST_PARAMS)


@pytest.mark.parametrize("family", sorted(FAST_PARAMS))
def test_onnx_export_follows_contract_and_matches_native_predictions(family, split):
    X_train, y_train, X_val, y_val = split
    model = make_model(family, FAST_PARAMS[family]).fit(X_train, y_train, X_val, y_val)
    onnx_bytes = model.to_onnx()

    graph = onnx.load_from_string(onnx_bytes).graph
    assert [i.name for i in graph.input] == [ONNX_INPUT]
    assert [o.name for o in graph.output] == [ONNX_OUTPUT]
    raw = OnnxModel(onnx_bytes).session.run(None, {ONNX_INPUT: X_val})[0]
    assert raw.shape == (len(X_val), 1) and raw.dtype == np.float32

    native = model.predict(X_val)
    result = parity(native, OnnxModel(onnx_bytes).predict(X_val), tolerance=1e-4)
    assert result.passed, result
    assert np.abs(native - y_val).mean() < np.abs(y_val - y_train.mean()).mean()  # learnt something


@pytest.mark.parametrize("family", sorted(FAST_PARAMS))
def test_same_data_and_params_give_identical_predictions(family, split):
    X_train, y_train, X_val, y_val = split
    first = make_model(family, FAST_PARAMS[family]).fit(X_train, y_train, X_val, y_val).predict(X_val)
    second = make_model(family, FAST_PARAMS[family]).fit(X_train, y_train, X_val, y_val).predict(X_val)
    np.testing.assert_array_equal(first, second)


def test_unknown_param_or_family_is_rejected():
    with pytest.raises(ValueError, match="unknown params"):
        make_model("trees", {"n_trees": 10})
    with pytest.raises(ValueError, match="unknown model family"):
        make_model("svm")


def test_mlp_resumes_after_interruption_without_redoing_epochs_and_ends_identical(split):
    X_train, y_train, X_val, y_val = split
    params = FAST_PARAMS["mlp"]
    uninterrupted = make_model("mlp", params).fit(X_train, y_train, X_val, y_val).predict(X_val)

    class Interrupted(Exception):
        pass

    def crash_after_third(epoch, train_loss, val_mae):
        if epoch == 3:
            raise Interrupted

    store = MemoryCheckpoints()
    with pytest.raises(Interrupted):
        make_model("mlp", params).fit(X_train, y_train, X_val, y_val, checkpoints=store, on_epoch=crash_after_third)
    assert sorted(store.saved) == [1, 2, 3]

    ran: list[int] = []
    resumed = make_model("mlp", params).fit(
        X_train, y_train, X_val, y_val, checkpoints=store, on_epoch=lambda epoch, *_: ran.append(epoch)
    )
    assert ran == list(range(4, params["epochs"] + 1))
    np.testing.assert_array_equal(resumed.predict(X_val), uninterrupted)


def test_parity_fails_when_predictions_differ_beyond_tolerance():
    native = np.array([0.0, 10.0, 1000.0])
    result = parity(native, native + np.array([0.5, 0.0, 2.0]), tolerance=1e-3)
    assert (result.max_abs, result.max_rel, result.passed) == (2.0, 0.5, False)
    assert parity(native, native + 1e-5, tolerance=1e-3).passed


def test_servability_reports_size_and_latency(split):
    X_train, y_train, X_val, y_val = split
    onnx_bytes = make_model("trees", FAST_PARAMS["trees"]).fit(X_train, y_train, X_val, y_val).to_onnx()
    report = servability(onnx_bytes, X_val[:10], repeats=3)
    assert report.size_bytes == len(onnx_bytes)
    assert report.latency_ms_per_1k > 0 and report.load_seconds > 0


def test_the_mlp_refit_runs_the_epochs_early_stopping_chose_and_keeps_the_last():
    """The served fit trains on the validation rows too: it must not early-stop on them, but run the
    judged fit's best epoch count (`refit_params`)."""
    frame = pl.read_csv(DATA, n_rows=2500)
    X = frame.select(FEATURES).to_numpy().astype(np.float32)
    y = frame["cnt"].to_numpy().astype(np.float64)
    # A rate this high overshoots within a few epochs: early stopping has something to stop.
    params = {**FAST_PARAMS["mlp"], "epochs": 12, "patience": 3, "learning_rate": 0.05}
    judged_losses, served_losses = [], []
    judged = make_model("mlp", params).fit(X[:1500], y[:1500], X[1500:2000], y[1500:2000],
                                           on_epoch=lambda e, t, v: judged_losses.append(v))
    assert len(judged_losses) < params["epochs"]  # stopped early
    best = int(np.argmin(judged_losses)) + 1
    refit = judged.refit_params()
    assert refit == {**judged.params, "stop_after": best}
    served = make_model("mlp", refit).fit(X[:2000], y[:2000], X[1500:2000], y[1500:2000],
                                          on_epoch=lambda e, t, v: served_losses.append(v))
    assert len(served_losses) == best  # exactly the chosen epochs, whatever the (in-sample) validation said
    assert served.refit_params()["stop_after"] == best
    assert make_model("trees", FAST_PARAMS["trees"]).refit_params() == make_model("trees", FAST_PARAMS["trees"]).params


def test_a_tree_ensemble_scores_each_row_the_same_bits_in_any_batch_on_any_threads_asked(split):
    """On several threads ONNX Runtime splits a row's sum over the trees for batches over 50 rows, so a
    row's prediction depended on its batch (seen up to 2e-3 apart); one thread keeps it."""
    X_train, y_train, X_val, y_val = split
    onnx_bytes = make_model("trees", {"n_estimators": 120}).fit(X_train, y_train, X_val, y_val).to_onnx()
    name = onnx.load_from_string(onnx_bytes).graph.input[0].name
    alone = np.array([OnnxModel(onnx_bytes, threads=1).predict(X_val[i:i + 1])[0] for i in range(len(X_val))])
    for threads in (1, 2):
        model = OnnxModel(onnx_bytes, threads=threads)
        assert model.trees and model.session.get_session_options().intra_op_num_threads == 1
        np.testing.assert_array_equal(model.predict(X_val), alone)  # 500 rows in one call
    # A plain session on two threads, as before: the whole batch does not score the same bits.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    whole = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"]).run(None, {name: X_val})[0]
    assert not np.array_equal(whole.ravel().astype(np.float64), alone)
