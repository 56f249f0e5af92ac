"""What a reviewer reads in MLflow: named signatures, LoggedModel names, descriptions, gate metrics, epoch losses."""

import math
from datetime import date

import mlflow
import numpy as np
import polars as pl
import pytest

from assets.promotion import _metric_name, gate_metrics, gate_summary
from assets.training import EpochLog, logged_model_name, registered_model_description
from ml.features import build_features, feature_names
from ml.models import make_model
from ml.onnx_scoring import OnnxModel
from ml.training import train_candidate
from ml.training_set import Window, split_by_time
from resources.mlflow_tracking import MlflowResource, feature_frame, replace_section


@pytest.fixture
def resource(tmp_path):
    return MlflowResource(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", artifact_root=str(tmp_path / "artifacts"))


def test_replace_section_rewrites_its_own_section_and_keeps_the_others():
    text = replace_section("", "", "Registered on 2011-01-01..2011-03-31.")
    text = replace_section(text, "Gate", "REFUSED: worse than v1.")
    text = replace_section(text, "Promotion", "Not promoted.")
    again = replace_section(text, "Gate", "PASSED against v1.")
    assert again == ("Registered on 2011-01-01..2011-03-31.\n\n## Gate\nPASSED against v1.\n\n"
                     "## Promotion\nNot promoted.")
    assert replace_section(again, "Gate", "PASSED against v1.") == again  # a re-run adds nothing


def test_feature_frame_refuses_a_graph_that_does_not_take_the_named_columns(spec):
    names = feature_names(spec)
    X = np.random.default_rng(0).random((50, len(names)))
    model = make_model("trees", {"n_estimators": 3}).fit(X, X[:, 0] * 10, X, X[:, 0] * 10)
    import onnx

    proto = onnx.load_from_string(model.to_onnx())
    frame = feature_frame(X[:5], names, proto)
    assert list(frame.columns) == names and frame.dtypes.unique().tolist() == [np.float32]
    with pytest.raises(ValueError, match="named features"):
        feature_frame(X[:5, :-1], names[:-1], proto)


def test_a_logged_onnx_model_has_a_named_signature_a_name_a_description_and_loads_unchanged(spec, resource, tmp_path):
    names = feature_names(spec)
    rng = np.random.default_rng(0)
    X = rng.random((200, len(names)))
    y = 50 + 100 * X[:, 0]
    onnx_bytes = make_model("trees", {"n_estimators": 5}).fit(X, y, X, y).to_onnx()
    with resource.start_run("pages", experiment="pages-test") as run:
        version = resource.log_onnx_model("pages_model", onnx_bytes, X[:5], {"training_set": "a/b.json"},
                                          feature_names=names, logged_model_name=logged_model_name(spec, "trees"),
                                          description="trained on 2011-01-01..2011-03-31")
    client = resource.client()
    mv = client.get_model_version("pages_model", version)
    assert mv.description == "trained on 2011-01-01..2011-03-31" and mv.tags["training_set"] == "a/b.json"
    logged = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert [m.name for m in logged] == ["rentals-trees"] and mv.source == f"models:/{logged[0].model_id}"
    signature = mlflow.models.get_model_info(f"models:/pages_model/{version}").signature
    assert signature.inputs.input_names() == names
    assert {c.type.name for c in signature.inputs.inputs} == {"float"}
    assert signature.outputs.input_names() == ["prediction"]
    # Serving loads the very bytes that were logged; parity with the in-memory graph holds.
    served = resource.load_onnx("pages_model", version)
    np.testing.assert_array_equal(OnnxModel(served).predict(X), OnnxModel(onnx_bytes).predict(X))
    # The column signature is enforced by pyfunc and maps onto the single tensor in column order.
    pyfunc = mlflow.pyfunc.load_model(f"models:/pages_model/{version}")
    out = pyfunc.predict(feature_frame(X[:7], names))
    np.testing.assert_allclose(out["prediction"].to_numpy(), OnnxModel(onnx_bytes).predict(X[:7]), rtol=1e-6)
    assert run.info.run_id == mv.run_id

    resource.describe_model("pages_model", registered_model_description(spec))
    text = client.get_registered_model("pages_model").description
    assert "`cnt`" in text and "rentals" in text and "trees" in text and "mlp" in text and "champion" in text
    resource.describe_version("pages_model", version, "Gate", "REFUSED: slower than the budget.")
    assert client.get_model_version("pages_model", version).description == (
        "trained on 2011-01-01..2011-03-31\n\n## Gate\nREFUSED: slower than the budget.")


def test_mlp_losses_per_epoch_reach_the_run_one_step_per_epoch(spec, resource):
    raw = pl.read_csv("data/bike_sharing_hourly.csv", try_parse_dates=True).filter(pl.col("dteday") < date(2011, 2, 1))
    frame = split_by_time(spec, build_features(spec, raw), Window(date(2011, 2, 1), 31, 7, 7))
    with resource.start_run("mlp-epochs", experiment="pages-test") as run:
        log = EpochLog(resource.client(), run.info.run_id, batch=7)  # flushes mid-fit and at the end
        train_candidate(spec, frame, "mlp", {"epochs": 6, "hidden": 8, "layers": 1}, on_epoch=log,
                        loss_estimate_folds=2)
        log.flush()
    client = resource.client()
    for key in ("train_loss", "val_loss", "judged_train_loss", "judged_val_loss"):
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in history) == [1, 2, 3, 4, 5, 6], key
        assert all(math.isfinite(m.value) and m.value > 0 for m in history)
    # A family without epochs is trained as before, and reports none.
    calls = []
    train_candidate(spec, frame, "trees", {"n_estimators": 5}, on_epoch=lambda *a: calls.append(a),
                    loss_estimate_folds=2)
    assert calls == []


def test_gate_metrics_cover_slices_naive_bootstrap_and_rules():
    comparison = {
        "challenger": {"n": 336, "mae": 30.0, "rmse": 40.0, "mape": 0.3},
        "champion": {"n": 336, "mae": 33.0, "rmse": 44.0, "mape": float("nan")},
        "challenger_slices": [{"slice": "hour_band", "segment": "[0, 6)", "n": 84, "mae": 5.0, "rmse": 7.0,
                               "mape": 0.2, "diff_ci_low": -1.0, "diff_ci_high": 0.5}],
        "champion_slices": [{"slice": "hour_band", "segment": "[0, 6)", "n": 84, "mae": 6.0, "rmse": 8.0, "mape": 0.3}],
        "bootstrap": {"mae_champion": 33.0, "mae_challenger": 30.0, "mae_diff": -3.0, "ci_low": -5.0, "ci_high": -1.0,
                      "p_better": 0.99, "n_boot": 1000, "n_units": 14},
        "challenger_business": {"days": 14.0, "short_per_day": 100.0},
        "naive": {"challenger_mae": 30.0, "naive_mae": 45.0, "rows": 300, "period_days": 7},
        "decision": {"passed": True, "rules": [
            {"rule": "overall_mae_improvement", "passed": True, "observed": 0.09, "limit": 0.02, "message": "ok"},
            {"rule": "beats_seasonal_naive", "passed": True, "observed": None, "limit": 0.05, "message": "ok"}]},
    }
    metrics = gate_metrics(comparison)
    assert metrics["passed"] == 1.0 and metrics["challenger_mae"] == 30.0 and "champion_mape" not in metrics
    assert metrics[_metric_name("slice", "hour_band", "[0, 6)", "challenger_mae")] == 5.0
    assert metrics[_metric_name("slice", "hour_band", "[0, 6)", "challenger_diff_ci_low")] == -1.0
    assert metrics["naive_mae"] == 45.0 and metrics["bootstrap_ci_high"] == -1.0
    assert metrics["rule/overall_mae_improvement/passed"] == 1.0 and "rule/beats_seasonal_naive/observed" not in metrics
    from mlflow.utils.validation import _validate_metric_name

    for name in metrics:
        _validate_metric_name(name)
    evidence = {"comparison": comparison, "champion_version": "1", "passed": True, "holdout": "2011-03-18..2011-03-31",
                "evaluated_at": "2026-01-01T00:00:00+00:00"}
    summary = gate_summary(evidence, "abc")
    assert summary.startswith("PASSED against champion v1 on the hold-out 2011-03-18..2011-03-31")
    assert "seasonal-naive MAE 45" in summary and "`abc`" in summary
