"""Promotion is one commit point: evidence first, the alias last, so a kill between never shows a
champion without its evidence."""

import mlflow
import pytest

from resources.mlflow_tracking import CHAMPION, MlflowResource

NAME = "rental_model"
EVIDENCE = {"promoted_at": "2026-11-22T00:00:00", "previous": "1", "dagster_run_id": "abc", "evidence": "lake/x.json"}


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no except clause catches it."""


def test_a_promotion_killed_before_the_alias_moves_leaves_the_old_champion_with_its_evidence(tmp_path, monkeypatch):
    resource = MlflowResource(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", artifact_root=str(tmp_path / "art"))
    client = resource.client()
    client.create_registered_model(NAME)
    for _ in range(2):
        client.create_model_version(NAME, source=str(tmp_path / "art"))
    resource.set_alias(NAME, CHAMPION, "1", {"promoted_at": "earlier"})

    def killed(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(mlflow.MlflowClient, "set_registered_model_alias", killed)
        with pytest.raises(Killed):
            resource.set_alias(NAME, CHAMPION, "2", EVIDENCE)
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == "1"
    assert client.get_model_version(NAME, "1").tags == {"champion.promoted_at": "earlier"}

    resource.set_alias(NAME, CHAMPION, "2", EVIDENCE)  # the rerun completes the promotion
    champion = client.get_model_version_by_alias(NAME, CHAMPION)
    assert str(champion.version) == "2"
    assert {k: v for k, v in champion.tags.items() if k.startswith("champion.")} == {
        f"champion.{k}": v for k, v in EVIDENCE.items()}
