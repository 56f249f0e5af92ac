"""MLflow pages a reviewer can read, after real retrains: descriptions, named signature, LoggedModel names,
per-epoch losses of the MLP, the gate as a run linked to both versions, evidence tags that link."""

import json
from datetime import date, timedelta
from urllib.parse import urlsplit
from urllib.request import url2pathname

import mlflow
import pytest

from assets.training import TRAINING_SET_TAG, TRAINING_SET_URI_TAG, model_name, version_training_set
from ml.features import feature_names
from orchestration.simulation import Simulation
from resources.mlflow_tracking import CHAMPION, RegisteredVersion

pytestmark = pytest.mark.slow

FIRST, CUTOFF = "2011-01-01", "2011-04-01"
MLP_EPOCHS = 12


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """The first champion (trees) and then an MLP challenger, each retrain launched with a reason."""
    s = Simulation.fresh(tmp_path_factory.mktemp("pages"))
    s.run("ingest_rentals", first=FIRST, last=(date.fromisoformat(CUTOFF) - timedelta(days=1)).isoformat())
    s.retrain(FIRST, CUTOFF, "first champion", tags={"retrain/reason": "first champion for the demo"})
    s.mlp = s.run("retrain_rentals", tags={"retrain/reason": "drift on temp (PSI 6.3)"}, run_config={"ops": {
        "rental_training_set": {"config": {"cutoff": CUTOFF}},
        "rental_candidate_model": {"config": {"family": "mlp", "params_json": json.dumps({"epochs": MLP_EPOCHS,
                                                                                          "patience": 100})}},
    }})
    assert s.retrains[0]["promoted"] and s.mlp.success
    return s


def test_the_registered_model_says_what_it_predicts_and_how_versions_are_promoted(sim):
    text = sim.mlflow.client().get_registered_model(model_name(sim.spec)).description
    for words in ("`cnt`", "`rentals`", "`trees`", "`mlp`", "challenger", "champion", "seasonal-naive",
                  "rollback_rentals_champion"):
        assert words in text, words


def test_a_version_says_its_window_why_it_was_trained_and_the_gate_result(sim):
    client = sim.mlflow.client()
    first = client.get_model_version(model_name(sim.spec), "1").description
    assert "trained on the partitions 2011-01-01..2011-03-31" in first and "cut-off 2011-04-01" in first
    assert "Why: first champion for the demo." in first and "holdout 2011-03-18..2011-03-31" in first
    assert "## Gate\nPASSED against no champion (first model)" in first
    assert "## Promotion\nPromoted to `champion`" in first and "replacing no earlier champion" in first

    mlp = client.get_model_version(model_name(sim.spec), "2")
    evidence = sim.storage.read_json("rentals/evaluations/challenger-v2.json")
    assert "`mlp` model" in mlp.description and "Why: drift on temp (PSI 6.3)." in mlp.description
    if evidence["passed"]:
        assert "## Gate\nPASSED against champion v1" in mlp.description and "Promoted to `champion`" in mlp.description
    else:
        assert "## Gate\nREFUSED against champion v1" in mlp.description and "Failed rules:" in mlp.description
        failed = [r["message"] for r in evidence["comparison"]["decision"]["rules"] if not r["passed"]]
        assert all(f"- {m}" in mlp.description for m in failed)
        assert "Not promoted" in mlp.description and "the champion stays v1" in mlp.description
    assert mlp.tags["retrain_reason"] == "drift on temp (PSI 6.3)"


def test_the_logged_model_has_a_named_signature_and_a_use_case_family_name(sim):
    client = sim.mlflow.client()
    names = feature_names(sim.spec)
    for version, family in (("1", "trees"), ("2", "mlp")):
        info = mlflow.models.get_model_info(f"models:/{model_name(sim.spec)}/{version}")
        assert info.signature.inputs.input_names() == names
        assert info.signature.outputs.input_names() == ["prediction"]
        assert client.get_logged_model(info.model_id).name == f"rentals-{family}"
        example = json.loads(mlflow.artifacts.load_text(f"models:/{model_name(sim.spec)}/{version}/input_example.json"))
        assert example["columns"] == names


def test_the_mlp_run_has_its_losses_per_epoch(sim):
    client = sim.mlflow.client()
    run_id = client.get_model_version(model_name(sim.spec), "2").run_id
    # The served fit runs the epochs the judged fit chose on the validation days (`refit_params`).
    chosen = int(client.get_run(run_id).data.params["stop_after"])
    assert 1 <= chosen <= MLP_EPOCHS
    for key, epochs in (("train_loss", chosen), ("val_loss", chosen), ("judged_train_loss", MLP_EPOCHS),
                        ("judged_val_loss", MLP_EPOCHS)):
        history = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in history) == list(range(1, epochs + 1)), key
    judged_val = {m.step: m.value for m in client.get_metric_history(run_id, "judged_val_loss")}
    assert chosen == min(judged_val, key=lambda step: (judged_val[step], step))
    assert "val_loss" in client.get_run(run_id).data.tags["mlflow.note.content"]
    trees = client.get_model_version(model_name(sim.spec), "1").run_id
    assert client.get_metric_history(trees, "train_loss") == []  # trees have no epochs


def test_the_gate_is_a_run_tagged_with_both_versions_with_its_evidence(sim):
    client = sim.mlflow.client()
    experiment = client.get_experiment_by_name("rentals").experiment_id
    runs = client.search_runs([experiment], "tags.purpose = 'gate' and tags.challenger_version = '2'")
    assert len(runs) == 1
    gate = runs[0]
    evidence = sim.storage.read_json("rentals/evaluations/challenger-v2.json")
    assert gate.info.run_name == "gate-v2-vs-v1" and gate.data.tags["champion_version"] == "1"
    assert gate.data.tags["challenger_run_id"] == client.get_model_version(model_name(sim.spec), "2").run_id
    assert gate.data.tags["decision"] == ("promote" if evidence["passed"] else "refuse")
    assert evidence["mlflow_run_id"] == gate.info.run_id
    metrics = gate.data.metrics
    assert metrics["challenger_mae"] == pytest.approx(evidence["comparison"]["challenger"]["mae"])
    assert metrics["champion_mae"] == pytest.approx(evidence["comparison"]["champion"]["mae"])
    assert metrics["naive_mae"] == pytest.approx(evidence["comparison"]["naive"]["naive_mae"])
    assert metrics["bootstrap_ci_low"] == pytest.approx(evidence["comparison"]["bootstrap"]["ci_low"])
    assert metrics["slice/season/winter/challenger_mae"] > 0 and "slice/season/winter/champion_mae" in metrics
    assert metrics["passed"] == float(evidence["passed"])
    logged = mlflow.artifacts.load_dict(f"runs:/{gate.info.run_id}/evaluation.json")
    assert logged["comparison"]["decision"] == evidence["comparison"]["decision"]
    assert "Gate:" in gate.data.tags["mlflow.note.content"]
    mv = client.get_model_version(model_name(sim.spec), "2")
    assert mv.tags["gate.run_id"] == gate.info.run_id
    assert mv.tags["gate.evidence_run"] == f"runs:/{gate.info.run_id}/evaluation.json"


def test_evidence_tags_link_and_the_lake_paths_the_code_reads_stay(sim):
    client = sim.mlflow.client()
    mv = client.get_model_version(model_name(sim.spec), "1")
    # The champion's evidence: the lake path as before, and links a reader can follow.
    assert mv.tags["champion.evidence"].endswith("rentals/evaluations/challenger-v1.json")
    uri = mv.tags["champion.evidence_uri"]
    assert uri.startswith("file://") and url2pathname(urlsplit(uri).path) == mv.tags["champion.evidence"]
    run = mv.tags["champion.evidence_run"]
    assert mlflow.artifacts.load_dict(run)["challenger_version"] == "1"
    # The training set: the pointer key the code reads is unchanged; its URI form sits beside it.
    assert mv.tags[TRAINING_SET_TAG].startswith("rentals/training_sets/")
    assert mv.tags[TRAINING_SET_URI_TAG].endswith(mv.tags[TRAINING_SET_TAG]) and mv.tags["training_data_uri"]
    pointer, frame = version_training_set(sim.spec, sim.storage, sim.mlflow, RegisteredVersion("1", mv.run_id))
    assert frame.height > 0 and pointer["cutoff"] == CUTOFF
    assert sim.mlflow.version_by_alias(model_name(sim.spec), CHAMPION) is not None
