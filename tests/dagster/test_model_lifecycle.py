"""Models as governed assets: train -> register -> gate -> promote, refusal of a bad model, rollback."""

import json

import dagster as dg
import mlflow
import numpy as np
import pytest

from assets.training import (JUDGED_MODEL_ARTIFACT, LOSS_ESTIMATOR_ARTIFACT, TRAINING_SET_TAG, model_name,
                             version_training_set)
from ml.models import make_model
from ml.onnx_scoring import OnnxModel
from ml.performance_estimate import LossEstimator
from ml.training import xy
from orchestration.simulation import Simulation
from resources.mlflow_tracking import CHALLENGER, CHAMPION

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """Ingest the first 90 days of 2011 and train the first champion on them, once for this module."""
    s = Simulation.fresh(tmp_path_factory.mktemp("lifecycle"))
    s.bootstrap("2011-01-01", "2011-04-01")
    return s


def version(sim, alias):
    v = sim.mlflow.version_by_alias(model_name(sim.spec), alias)
    return str(v.version) if v else None


def metadata(result, asset):
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset)
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_first_90_days_give_a_registered_onnx_champion_with_evidence(sim):
    assert sim.retrains[0]["promoted"] and version(sim, CHAMPION) == "1"
    client = sim.mlflow.client()
    mv = client.get_model_version(model_name(sim.spec), "1")
    run = client.get_run(mv.run_id)
    assert run.data.params["family"] == "trees" and "n_estimators" in run.data.params
    assert run.data.tags["partitions"] == "2011-01-01..2011-03-31" and len(run.data.tags["data_digest"]) == 64
    assert run.data.tags["code_version"]
    assert run.data.metrics["parity_max_rel"] < 1e-3 and run.data.metrics["holdout_mae"] > 0
    assert run.inputs.dataset_inputs[0].dataset.digest == run.data.tags["data_digest"][:36]
    assert mv.tags["champion.previous"] == "None" and "evidence" in " ".join(mv.tags)
    onnx = sim.mlflow.load_onnx(model_name(sim.spec), "1")
    assert onnx[:2] != b"\x80\x04"  # an ONNX protobuf, not a pickle
    importance = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/feature_importance.json")
    assert max(importance, key=importance.get) in ("hr", "hr_sin", "hr_cos")


def test_the_served_version_is_the_judged_recipe_refit_on_the_whole_window(sim):
    """The gate judges a fit that never saw the hold-out; the registered version is the same recipe
    refit on every day up to the cut-off, and it beat the seasonal-naive floor to get there."""
    client = sim.mlflow.client()
    mv = client.get_model_version(model_name(sim.spec), "1")
    metrics = client.get_run(mv.run_id).data.metrics
    assert "judged" in mv.tags["fits"] and "2011-01-01..2011-03-31 (this version)" in mv.tags["fits"]
    # In sample on the whole window, the refit is better than the judged fit was on unseen days.
    assert metrics["served_window_mae"] < metrics["holdout_mae"]
    judged = sim.mlflow.load_run_artifact(mv.run_id, JUDGED_MODEL_ARTIFACT)
    assert judged != sim.mlflow.load_onnx(model_name(sim.spec), "1")
    evidence = sim.storage.read_json("rentals/evaluations/challenger-v1.json")["comparison"]
    naive = evidence["naive"]
    assert naive["rows"] > 13 * 24 and naive["challenger_mae"] < 0.95 * naive["naive_mae"]
    assert LossEstimator.from_dict(json.loads(sim.mlflow.load_run_artifact(mv.run_id, LOSS_ESTIMATOR_ARTIFACT)))


def test_a_retrain_of_the_same_recipe_on_the_same_data_reports_the_existing_version(sim):
    before = len(sim.mlflow.client().search_model_versions(f"name = '{model_name(sim.spec)}'"))
    result = sim.run("retrain_rentals", run_config={"ops": {"rental_training_set": {"config": {"cutoff": "2011-04-01"}}}})
    candidate = metadata(result, "rental_candidate_model")
    assert result.success and candidate["reused"] is True and candidate["model_version"] == "1"
    assert len(sim.mlflow.client().search_model_versions(f"name = '{model_name(sim.spec)}'")) == before
    assert metadata(result, "rental_champion_model")["decision"] == "kept v1"


def test_retraining_on_the_same_inputs_reproduces_the_metrics_and_is_not_promoted(sim):
    sim.run("retrain_rentals", run_config={"ops": {"rental_training_set": {"config": {"cutoff": "2011-04-01"}},
                                                   "rental_candidate_model": {"config": {"force": True}}}})
    client = sim.mlflow.client()
    first = client.get_run(client.get_model_version(model_name(sim.spec), "1").run_id).data.metrics
    second = client.get_run(client.get_model_version(model_name(sim.spec), "2").run_id).data.metrics
    for k in ("train_mae", "validation_mae", "holdout_mae", "holdout_rmse"):
        assert second[k] == pytest.approx(first[k], rel=1e-9)
    # Equal is not better: the gate wants a 2% improvement, so the champion stays.
    assert version(sim, CHAMPION) == "1"


def training_set_of(sim, alias):
    return version_training_set(sim.spec, sim.storage, sim.mlflow, sim.mlflow.version_by_alias(model_name(sim.spec), alias))


def test_a_model_trained_on_shuffled_labels_is_refused_by_the_gate(sim):
    _, frame = training_set_of(sim, CHAMPION)
    tags = {TRAINING_SET_TAG: sim.mlflow.client().get_model_version(model_name(sim.spec), "1").tags[TRAINING_SET_TAG]}
    (X, y), (Xv, yv) = xy(sim.spec, frame, "train"), xy(sim.spec, frame, "validation")
    bad = make_model("trees", {"seed": 1}).fit(X, np.random.default_rng(0).permutation(y), Xv, yv)
    with sim.mlflow.start_run("shuffled-labels", tags={"purpose": "gate test"}):
        sim.mlflow.log_bytes(bad.to_onnx(), JUDGED_MODEL_ARTIFACT)  # the fit the gate judges
        bad_version = sim.mlflow.log_onnx_model(model_name(sim.spec), bad.to_onnx(), X[:5], tags)
    sim.mlflow.set_alias(model_name(sim.spec), CHALLENGER, bad_version, {"purpose": "gate test"})

    result = dg.materialize(
        [*sim.defs.assets, *sim.defs.asset_checks],
        selection=dg.AssetSelection.assets("rental_model_evaluation", "rental_champion_model"),
        resources=sim.resources, instance=sim.instance, raise_on_error=False,
    )
    gate = next(c for c in result.get_asset_check_evaluations() if c.check_name == "promotion_gate")
    assert not gate.passed and "overall_mae_improvement" in gate.metadata["failed_rules"].value
    assert gate.severity == dg.AssetCheckSeverity.WARN
    # A refusal is a decision: the run is green, the champion asset records "kept v1", the challenger
    # stays in shadow, and the alert sensor sends one alert saying so to the training owner.
    assert result.success and version(sim, CHAMPION) == "1" and version(sim, CHALLENGER) == bad_version
    decision = metadata(result, "rental_champion_model")
    assert decision["decision"] == "kept v1" and decision["refused_version"] == bad_version
    assert "overall_mae_improvement" in decision["refusal"] or "MAE" in decision["refusal"]
    sent = json.loads(sim.tick("rentals_alert_sensor").cursor)["sent"]
    assert [a for a in sent if a.startswith(f"run {result.run_id[:8]}|")] == [
        f"run {result.run_id[:8]}|rental_model_evaluation|gate_refused"]
    evidence = sim.storage.read_json(f"rentals/evaluations/challenger-v{bad_version}.json")
    assert evidence["passed"] is False and evidence["champion_version"] == "1"
    assert evidence["comparison"]["challenger"]["mae"] > 1.5 * evidence["comparison"]["champion"]["mae"]


def test_rollback_moves_the_champion_back_in_one_step_with_an_audit_trail(sim):
    name = model_name(sim.spec)
    sim.mlflow.set_alias(name, CHAMPION, "2", {"purpose": "rollback test setup"})
    result = sim.run("rollback_rentals_champion", run_config={"ops": {"rollback_rental_champion": {
        "config": {"version": "1", "reason": "v2 misbehaves in production"}}}})
    assert result.success and version(sim, CHAMPION) == "1"
    tags = sim.mlflow.client().get_model_version(name, "1").tags
    assert tags["champion.rolled_back_from"] == "2" and tags["champion.reason"] == "v2 misbehaves in production"
    assert metadata(result, "rental_champion_model")["previous_champion"] == "2"


def test_the_mlp_family_trains_checkpoints_and_registers_through_onnx(sim):
    result = sim.run("retrain_rentals", run_config={"ops": {
        "rental_training_set": {"config": {"cutoff": "2011-04-01"}},
        "rental_candidate_model": {"config": {"family": "mlp", "params_json": '{"epochs": 30}'}},
    }})
    candidate = metadata(result, "rental_candidate_model")
    assert candidate["family"] == "mlp" and candidate["parity_max_rel"] < 1e-3
    run = sim.mlflow.client().get_run(sim.mlflow.client().get_model_version(
        model_name(sim.spec), candidate["model_version"]).run_id)
    assert run.data.params["family"] == "mlp" and run.data.params["epochs"] == "30"
    # It checkpointed while training, and pruned the checkpoints once the version was registered.
    assert candidate["checkpoints_pruned"] >= 1
    assert [k for k in sim.storage.list_keys("rentals/checkpoints/") if k.endswith(".pt")] == []
    onnx = sim.mlflow.load_onnx(model_name(sim.spec), candidate["model_version"])
    _, frame = training_set_of(sim, CHAMPION)
    X, _ = xy(sim.spec, frame, "holdout")
    assert OnnxModel(onnx).predict(X).shape == (X.shape[0],)
