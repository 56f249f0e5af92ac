"""Two retrains at once on one lake and one registry: each run reads only what it wrote itself."""

import os
import subprocess
import sys

import dagster as dg
import pytest

from assets.training import TRAINING_SET_TAG, model_name, retrain_key
from resources.mlflow_tracking import MlflowResource
from resources.sources import ReplaySource
from resources.storage import LocalStorage
from tests.dagster.helpers import materialize_days

CUTOFFS = ("2011-04-01", "2011-04-15")


def retrain(env: dict, cutoff: str, folder) -> subprocess.Popen:
    config = folder / f"retrain-{cutoff}.yaml"
    config.write_text(f'ops:\n  rental_training_set:\n    config:\n      cutoff: "{cutoff}"\n')
    return subprocess.Popen(
        [sys.executable, "-m", "dagster", "job", "execute", "-m", "orchestration.definitions", "-j", "retrain_rentals",
         "-c", str(config), "--tags", '{"retrain/use_case": "rentals", "test/cutoff": "%s"}' % cutoff],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.integration
def test_two_retrains_at_once_never_read_each_others_training_set_or_candidate(spec, tmp_path, postgres_db):
    lake = LocalStorage(root=str(tmp_path / "lake"))
    result = materialize_days(spec, {"storage": lake, "source": ReplaySource()}, "2011-01-01", "2011-04-14",
                              selection=dg.AssetSelection.assets(*(f"{s}_{spec.name}" for s in ("raw", "validated", "quarantined")),
                                                                 spec.asset("features")).without_checks())
    assert result.success
    # The registry in PostgreSQL, as in production: two processes write it at once.
    tracking = (f"postgresql://{postgres_db['DAGSTER_PG_USER']}@{postgres_db['DAGSTER_PG_HOST']}:"
                f"{postgres_db['DAGSTER_PG_PORT']}/{postgres_db['DAGSTER_PG_DB']}")
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "LAKE_ROOT": lake.root, "MLFLOW_TRACKING_URI": tracking,
           "MLFLOW_ARTIFACT_ROOT": str(tmp_path / "artifacts")}
    # What a deployment sets up once, before any run, exists before the two retrains (and is not what
    # this test is about). Created by the first two processes at once, each races:
    # - Dagster's instance storage (SQLite here): both stamp a fresh runs.db, which is left with two
    #   alembic revisions, and every later reader fails with "Version table 'alembic_version' has more
    #   than one head present". A deployment's webserver/daemon (or `dagster instance migrate`) makes it.
    # - MLflow's schema: one process fails in create_all ("duplicate key value violates unique constraint
    #   pg_type_typname_nsp_index") or in alembic. A deployment's tracking server makes it (see
    #   MlflowResource.client).
    # The experiment and the registered model are NOT created here: the two retrains create them at once,
    # which is the race MlflowResource must survive (get-or-create).
    with dg.DagsterInstance.from_config(str(home)):
        pass
    mlflow = MlflowResource(tracking_uri=tracking, artifact_root=str(tmp_path / "artifacts"))
    mlflow.client().search_registered_models()
    assert mlflow.client().get_experiment_by_name(spec.name) is None
    procs = [retrain(env, c, tmp_path) for c in CUTOFFS]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outputs)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = {r.tags["test/cutoff"]: r for r in instance.get_runs(dg.RunsFilter(job_name="retrain_rentals"))}
    assert sorted(runs) == sorted(CUTOFFS)
    versions = set()
    for cutoff, run in runs.items():
        pointer = lake.read_json(lake.read_json(retrain_key(spec, run.run_id, "training_set"))["pointer"])
        assert pointer["cutoff"] == cutoff
        version = lake.read_json(retrain_key(spec, run.run_id, "candidate"))["version"]
        tags = mlflow.client().get_model_version(model_name(spec), version).tags
        # The version this run registered was trained on this run's window, and the gate judged it.
        assert tags["cutoff"] == cutoff and tags["dagster_run_id"] == run.run_id
        assert lake.read_json(tags[TRAINING_SET_TAG])["digest"] == pointer["digest"]
        evidence = lake.read_json(f"{spec.name}/evaluations/challenger-v{version}.json")
        assert evidence["challenger_version"] == version and evidence["data_digest"] == pointer["digest"]
        versions.add(version)
    assert len(versions) == 2
