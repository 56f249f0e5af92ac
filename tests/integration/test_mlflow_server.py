"""MLflow as a real service: `mlflow server` as a subprocess, runs and registry in PostgreSQL, artifacts
proxied by the server to an S3 bucket, the lake on S3 and Dagster's instance in PostgreSQL. The code
location's own definitions (resources from the environment) train, register, promote and score.

The tracking URI carries a planted password; afterwards it must be nowhere Dagster or MLflow keeps
anything: event log, runs and their tags, snapshots, compute logs, the databases, stdout/stderr.

Artifacts are proxied (`--serve-artifacts` with `--artifacts-destination s3://...`, the MLflow 3
default) rather than written by clients straight to S3: only the server holds credentials for the
model bucket, Dagster's run workers need none (they already have the lake's), and the registry's
artifact URIs (`mlflow-artifacts:/...`) do not name a bucket, so the storage can move behind them.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
import zlib
from pathlib import Path

import boto3
import dagster as dg
import psycopg2
import pytest
from dagster._serdes import serialize_value
from mlflow import MlflowClient

from assets.common import table_key
from assets.training import model_name
from ml.features import feature_matrix
from ml.monitoring import PREDICTION, clip_counts
from ml.onnx_scoring import OnnxModel
from orchestration.definitions import build_definitions
from resources.mlflow_tracking import CHAMPION
from resources.storage import S3Storage

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "dagster.yaml"
PG_HOST = os.getenv("DAGSTER_PG_HOST", "127.0.0.1")
PG_PORT = int(os.getenv("DAGSTER_PG_PORT", "5432"))
SECRET = f"s3cr3t-{uuid.uuid4().hex}"
# A first champion on 4 weeks (train 14 days, validation 7, hold-out 7) rather than the 90 days of
# deploy/first_champion.yaml: this test is about the services, and ingesting a day through S3 and
# PostgreSQL costs up to 2 s on a busy 2-core machine. It still clears the gate (seasonal-naive floor).
FIRST, LAST, CUTOFF = "2011-03-04", "2011-03-31", "2011-04-01"
WINDOW = {"cutoff": CUTOFF, "window_days": 28, "validation_days": 7, "holdout_days": 7}
# Every variable build_resources / the code location reads; the ones the test does not set are unset.
RESOURCE_ENV = ("AWS_ENDPOINT_URL", "LAKE_S3_BUCKET", "LAKE_S3_PREFIX", "LAKE_ROOT", "MLFLOW_TRACKING_URI",
                "MLFLOW_ARTIFACT_ROOT", "MLFLOW_UI_URL", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                "MLFLOW_TRACKING_TOKEN", "ALERT_SINK", "ALERT_WEBHOOK_URL", "ALERT_SMTP_HOST", "ALERT_EMAIL_TO",
                "LANDING_URL", "RENTALS_SOURCE", "RENTALS_REPLAY_CSV", "RENTALS_LANDING_URL", "DAGSTER_EXECUTOR")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A started `mlflow server` process group; `wait_ready` lets the caller work while it boots."""

    def __init__(self, command: list[str], env: dict, log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [*command, "--port", str(self.port)]
        self.log = log
        with open(log, "wb") as out:  # the child keeps its own descriptor
            # Its own session: stop() ends the server and the uvicorn worker it spawns, nothing else.
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, timeout: float = 150.0) -> None:
        """GET /health until it answers 200; a clear error when the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"`{' '.join(self.command)}` exited with {self.proc.returncode} before "
                                   f"serving; its log ends with:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"mlflow server at {self.url} not healthy after {timeout:.0f} s; its log ends "
                           f"with:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # mlflow forwards it to uvicorn
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever of the group is left
        except ProcessLookupError:
            pass
        self.proc.wait(10)


def _admin():
    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres")
    conn.autocommit = True
    return conn


@pytest.fixture()
def mlflow_db():
    """A fresh database for MLflow's backend store (not Dagster's: both have a `runs` table)."""
    name = f"mlflow_test_{uuid.uuid4().hex[:8]}"
    admin = _admin()
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture()
def artifact_bucket(s3_server):
    """The model bucket, apart from the lake's: only the MLflow server writes it."""
    name = f"mlflow-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture()
def mlflow_server(tmp_path, mlflow_db, s3_server, artifact_bucket):
    exe = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
    command = [exe, "server", "--backend-store-uri", f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{mlflow_db}",
               "--serve-artifacts", "--artifacts-destination", f"s3://{artifact_bucket}/mlflow",
               "--host", "127.0.0.1", "--workers", "1"]
    # The server alone holds the bucket's credentials. Job execution (GenAI scorers, trace rollups)
    # is not used here and would start seven more processes on a 2-core machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DAGSTER_", "AWS_"))}
    env.update(MLFLOW_S3_ENDPOINT_URL=s3_server, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1", MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    server = MlflowServer(command, env, tmp_path / "mlflow-server.log")
    try:
        yield server
    finally:
        server.stop()


def _database_text(dbname: str) -> str:
    """Every row of every table as text; compressed blobs (Dagster's snapshots) decompressed."""
    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname=dbname)
    parts = []
    try:
        cur = conn.cursor()
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        for (table,) in cur.fetchall():
            cur.execute(f'SELECT * FROM "{table}"')
            for row in cur:
                for value in row:
                    if isinstance(value, memoryview):
                        value = bytes(value)
                    if isinstance(value, bytes):
                        try:
                            value = zlib.decompress(value)
                        except zlib.error:
                            pass
                        value = value.decode("utf-8", "replace")
                    parts.append(f"{table}: {value}")
    finally:
        conn.close()
    return "\n".join(parts)


def _files_text(root: Path) -> str:
    return "\n".join(f"{p}: {p.read_bytes().decode('utf-8', 'replace')}" for p in root.rglob("*") if p.is_file())


@pytest.mark.integration
def test_retrain_and_daily_run_on_mlflow_server_with_postgres_and_s3_leak_no_credentials(
        spec, tmp_path, monkeypatch, capfd, postgres_db, s3_server, s3_bucket, artifact_bucket, mlflow_db,
        mlflow_server):
    host = mlflow_server.url.removeprefix("http://")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY, home / "dagster.yaml")
    for name in RESOURCE_ENV:  # unset, and restored afterwards even if the run sets it (the resource
        monkeypatch.setenv(name, "")  # sets MLFLOW_TRACKING_USERNAME/PASSWORD from the URI)
        monkeypatch.delenv(name)
    # A server without auth ignores the basic auth the resource has MLflow send (taken from the URI).
    for k, v in {**postgres_db, "DAGSTER_HOME": str(home), "MLFLOW_TRACKING_URI": f"http://dagster:{SECRET}@{host}",
                 "LAKE_S3_BUCKET": s3_bucket, "AWS_ENDPOINT_URL": s3_server,
                 "RENTALS_REPLAY_CSV": str(ROOT / "data" / "bike_sharing_hourly.csv")}.items():
        monkeypatch.setenv(k, v)
    defs = build_definitions([spec])  # the code location's resources, from the variables above

    with dg.DagsterInstance.from_config(str(home)) as instance:
        def run(job: str, **kwargs) -> dg.ExecuteInProcessResult:
            result = defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, **kwargs)
            failures = [e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure]
            assert result.success, f"{job} failed:\n" + "\n".join(failures)
            return result

        # Ingestion needs no MLflow: it runs while the server boots.
        run(f"ingest_{spec.name}", tags={"dagster/asset_partition_range_start": FIRST,
                                         "dagster/asset_partition_range_end": LAST})
        mlflow_server.wait_ready()
        retrain = run(f"retrain_{spec.name}",
                      run_config={"ops": {spec.asset("training_set"): {"config": WINDOW}}})
        daily = run(f"daily_{spec.name}", tags={"dagster/asset_partition_range_start": CUTOFF,
                                                "dagster/asset_partition_range_end": CUTOFF})

        # The registry lives in the server: asked without the credentials, by its own URL.
        client, name = MlflowClient(mlflow_server.url, mlflow_server.url), model_name(spec)
        champion = client.get_model_version_by_alias(name, CHAMPION)
        candidate = next(e.materialization.metadata for e in retrain.get_asset_materialization_events()
                         if e.asset_key.to_user_string() == spec.asset("candidate_model"))
        assert champion.version == candidate["model_version"].value == "1"
        assert client.get_model_version(name, "1").run_id == champion.run_id
        run_info = client.get_run(champion.run_id).info
        assert run_info.artifact_uri.startswith("mlflow-artifacts:/")  # proxied: no bucket in the registry
        # The metadata names the run and the server, without the password.
        assert candidate["mlflow_run"].value == f"mlflow run {champion.run_id} (http://{host})"

        # Its artifacts are objects in the model bucket, and the ONNX there is what the registry serves.
        s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
        keys = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=artifact_bucket)
                for o in page.get("Contents", [])}
        run_prefix = f"mlflow/{run_info.experiment_id}/{champion.run_id}/artifacts/"
        assert {run_prefix + "judged_model.onnx", run_prefix + "loss_estimator.json"} <= keys
        model_dir = client.get_model_version_download_uri(name, champion.version)  # where serving loads from
        assert model_dir.startswith("mlflow-artifacts:/"), model_dir
        onnx_key = "mlflow/" + model_dir.removeprefix("mlflow-artifacts:/").strip("/") + "/model.onnx"
        assert onnx_key in keys, sorted(keys)
        registered = s3.get_object(Bucket=artifact_bucket, Key=onnx_key)["Body"].read()

        # The daily run scored the day from that ONNX and wrote the predictions to the S3 lake.
        lake = S3Storage(bucket=s3_bucket, prefix="lake", endpoint_url=s3_server)
        predictions = lake.read_parquet(table_key(spec, "predictions", CUTOFF))
        features = lake.read_parquet(table_key(spec, "features", CUTOFF))
        assert predictions.height == 24 and set(predictions["model_version"]) == {champion.version}
        expected = clip_counts(OnnxModel(registered).predict(feature_matrix(spec, features)))
        assert predictions[PREDICTION].to_list() == pytest.approx(list(expected), rel=1e-6)

        # The planted password: nowhere in what Dagster or MLflow recorded, nor in what was printed.
        runs = instance.get_runs()
        assert len(runs) == 3
        places = {
            "event log": serialize_value([instance.all_logs(r.run_id) for r in runs]),
            "runs (tags, config)": serialize_value(runs),
            "job snapshots": serialize_value([instance.get_job_snapshot(r.job_snapshot_id) for r in runs]),
            "execution plans": serialize_value([instance.get_execution_plan_snapshot(r.execution_plan_snapshot_id)
                                                for r in runs]),
            "dagster database": _database_text(postgres_db["DAGSTER_PG_DB"]),
            "DAGSTER_HOME (compute logs)": _files_text(home),
        }
    mlflow_runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    places.update({
        "mlflow run tags and params": repr([(r.data.tags, r.data.params) for r in mlflow_runs]),
        "mlflow model versions": repr([v.tags for v in client.search_model_versions(f"name='{name}'")]),
        "mlflow database": _database_text(mlflow_db),
        "mlflow server log": mlflow_server.log.read_text(errors="replace"),
    })
    assert mlflow_runs and daily.success
    printed = capfd.readouterr()
    places.update({"stdout": printed.out, "stderr": printed.err})
    assert len(places["event log"]) > 10_000 and "mlflow run" in places["dagster database"]  # looked at real data
    leaked = [place for place, text in places.items() if SECRET in text]
    assert not leaked, f"the tracking URI's password leaked into: {', '.join(leaked)}"
