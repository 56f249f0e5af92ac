"""An MLP retrain checkpoints every epoch to the lake; once its candidate is registered, they go."""

import json
from pathlib import Path

import dagster as dg
import pytest

from assets.training import model_name
from resources.mlflow_tracking import CHALLENGER, MlflowResource
from resources.storage import LocalStorage
from tests.dagster.helpers import UNUSED, materialize_days

pytestmark = pytest.mark.slow


class WatchedStorage(LocalStorage):
    """A local lake that notes, in `ledger`, each checkpoint written and each key deleted, the latter
    with how many versions the registry held at that moment."""

    ledger: str
    tracking_uri: str

    def _note(self, entry: dict) -> None:
        with open(self.ledger, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def write_bytes(self, key: str, data: bytes) -> str:
        if key.endswith(".pt"):
            self._note({"saved": key})
        return super().write_bytes(key, data)

    def delete(self, key: str) -> None:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient(self.tracking_uri)
        versions = client.search_model_versions("name = 'rental_model'")
        try:
            challenger = [str(client.get_model_version_by_alias("rental_model", CHALLENGER).version)]
        except MlflowException:
            challenger = []
        self._note({"deleted": key, "registered": len(versions), "challenger": challenger})
        super().delete(key)


def test_an_mlp_retrain_prunes_its_checkpoints_once_the_candidate_is_registered(spec, replay, tmp_path):
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    ledger = tmp_path / "ledger.jsonl"
    storage = WatchedStorage(root=str(tmp_path / "lake"), ledger=str(ledger), tracking_uri=tracking_uri)
    mlflow = MlflowResource(tracking_uri=tracking_uri, artifact_root=str(tmp_path / "artifacts"))
    ingest = dg.AssetSelection.assets("raw_rentals", "validated_rentals", "quarantined_rentals",
                                      "rental_features").without_checks()
    assert materialize_days(spec, {"storage": storage, "source": replay}, "2011-01-01", "2011-01-28",
                            selection=ingest).success

    from orchestration.definitions import build_use_case

    result = dg.materialize(
        build_use_case(spec).assets,
        selection=dg.AssetSelection.assets("rental_training_set", "rental_candidate_model"),
        resources={**UNUSED, "storage": storage, "source": replay, "mlflow": mlflow},
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
        run_config={"ops": {
            "rental_training_set": {"config": {"cutoff": "2011-01-29", "window_days": 28, "validation_days": 7,
                                               "holdout_days": 7}},
            "rental_candidate_model": {"config": {"family": "mlp", "params_json": '{"epochs": 3}'}},
        }})
    assert result.success
    event = next(e for e in result.get_asset_materialization_events()
                 if e.asset_key.to_user_string() == "rental_candidate_model")
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}

    entries = [json.loads(line) for line in Path(ledger).read_text().splitlines()]
    saved = [e["saved"] for e in entries if "saved" in e]
    deleted = [e for e in entries if "deleted" in e]
    assert len(saved) == 3 and all("/checkpoints/" in k and "epoch-" in k for k in saved)  # one per epoch
    assert sorted(e["deleted"] for e in deleted) == sorted(saved)
    assert metadata["checkpoints_pruned"] == 3 and metadata["family"] == "mlp"
    # Never before the registration: when the first checkpoint went, the version existed and was the challenger.
    assert all(e["registered"] == 1 and e["challenger"] == [metadata["model_version"]] for e in deleted)
    assert storage.list_keys("rentals/checkpoints/") == []
    assert mlflow.version_by_alias(model_name(spec), CHALLENGER).version == metadata["model_version"]
