"""The production instance config (deploy/dagster.yaml) against the real PostgreSQL."""

import shutil
from pathlib import Path

import dagster as dg
import pytest

from resources.storage import LocalStorage
from tests.dagster.helpers import materialize_days

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "dagster.yaml"


@pytest.mark.integration
def test_materialization_is_recorded_in_postgres_event_log(spec, replay, tmp_path, postgres_db, monkeypatch):
    for k, v in postgres_db.items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY, home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = materialize_days(spec, {"storage": LocalStorage(root=str(tmp_path / "lake")), "source": replay},
                                  "2011-06-01", selection="raw_rentals", instance=instance)
        assert result.success
        event = instance.get_latest_materialization_event(dg.AssetKey("raw_rentals"))
        assert event.run_id == result.run_id
        assert event.asset_materialization.partition == "2011-06-01"
        assert event.asset_materialization.metadata["dagster/row_count"].value == 24
    # A second instance on the same database reads the same history: it lives in PostgreSQL.
    with dg.DagsterInstance.from_config(str(home)) as again:
        assert again.get_run_by_id(result.run_id).is_success
