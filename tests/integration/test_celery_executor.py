"""The daily graph on Celery workers (dagster-celery, RabbitMQ broker) gives the same lake as in process.

Two workers are started with the dagster-celery CLI, exactly as docs/distributed-execution.md shows, on a
queue of their own (other workers on the same broker never see these steps). They share with the run a
PostgreSQL instance, the lake and the MLflow store, all passed by environment variables.
"""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository

from ml.usecases import BIKE_RENTALS, replay_file
from orchestration.simulation import Simulation
from resources.alerts import AlertSink
from resources.mlflow_tracking import MlflowResource
from resources.sources import LandingSource, ReplaySource
from resources.storage import LocalStorage
from tests.dagster.helpers import materialize_days

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BROKER = os.getenv("DAGSTER_CELERY_BROKER", "pyamqp://guest@127.0.0.1:5672//")
FIRST, LAST = "2011-04-01", "2011-04-03"  # the backfill: three days right after the champion's window
RANGE_TAGS = {"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST}
# Variables that would point the resources somewhere else than this test's lake and replay.
FOREIGN = ("LAKE_S3_BUCKET", "LAKE_S3_PREFIX", "AWS_ENDPOINT_URL", "LANDING_URL", "ALERT_SINK", "DAGSTER_EXECUTOR")


@pytest.fixture()
def celery_env(tmp_path, postgres_db, monkeypatch) -> dict:
    """One environment for the run (this process) and the workers: instance, lake, MLflow, broker, queue."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items()
           if k not in FOREIGN and not k.endswith(("_SOURCE", "_LANDING_URL", "_REPLAY_CSV"))}
    env.update(postgres_db)
    env.update({
        "DAGSTER_HOME": str(home),
        "LAKE_ROOT": str(tmp_path / "lake_celery"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "RENTALS_REPLAY_CSV": str(ROOT / replay_file(BIKE_RENTALS)),
        "DAGSTER_EXECUTOR": "celery",
        "DAGSTER_CELERY_BROKER": BROKER,
        "DAGSTER_CELERY_BACKEND": "rpc://",
        "DAGSTER_CELERY_QUEUE": f"dagster-test-{uuid.uuid4().hex[:8]}",
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),  # `celery` itself
        "PYTHONWARNINGS": "ignore",
    })
    for k in set(os.environ) - set(env):
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # Create the instance's tables once, before two workers race to create them.
    with dg.DagsterInstance.from_config(str(home)):
        pass
    return env


@pytest.fixture()
def workers(celery_env, tmp_path):
    """Two workers started with the dagster-celery CLI, each one step at a time; stopped even on failure."""
    cli = shutil.which("dagster-celery", path=os.path.dirname(sys.executable))
    suffix = uuid.uuid4().hex[:6]
    started = []
    try:
        for n in (1, 2):
            name, log = f"w{n}-{suffix}", tmp_path / f"worker{n}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [cli, "worker", "start", "-A", "dagster_celery.app", "-y", str(ROOT / "deploy" / "celery.yaml"),
                     "-n", name, "-q", celery_env["DAGSTER_CELERY_QUEUE"], "--", "--concurrency=1"],
                    cwd=ROOT, env=celery_env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True)  # its own process group: the celery process and its pool
            started.append((name, proc, log))
        yield started
    finally:
        for _, proc, _ in started:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.time() + 20
        for _, proc, _ in started:
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc, signal.SIGKILL)  # the pool's children, if the warm shutdown left any
            proc.wait()
        _delete_queue(celery_env["DAGSTER_CELERY_QUEUE"])


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group id is the pid: started with start_new_session
    except ProcessLookupError:
        pass


def _delete_queue(queue: str) -> None:
    from kombu import Connection

    try:
        with Connection(BROKER) as conn:
            conn.default_channel.queue_delete(queue)
    except Exception:  # noqa: BLE001  best effort: an unused queue is harmless
        pass


def _logs(started) -> str:
    return "\n".join(f"--- {name}\n" + log.read_text(errors="replace")[-4000:] for name, _, log in started)


def _wait_until_ready(started, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    pending = {name for name, _, _ in started}
    while pending and time.time() < deadline:
        for name, proc, log in started:
            assert proc.poll() is None, f"worker {name} exited with {proc.returncode}\n{_logs(started)}"
            if name in pending and f"{name}@" in (text := log.read_text(errors="replace")) and " ready." in text:
                pending.discard(name)
        time.sleep(0.5)
    assert not pending, f"workers not ready after {timeout} s: {sorted(pending)}\n{_logs(started)}"


def _bootstrap(tmp_path: Path, env: dict) -> None:
    """The first champion, trained in this process on the 90 days before FIRST into the celery lake."""
    resources = {
        "storage": LocalStorage(root=env["LAKE_ROOT"]),
        "source": ReplaySource(csv_path=env["RENTALS_REPLAY_CSV"]),
        "landing": LandingSource(url=str(tmp_path / "landing")),
        "mlflow": MlflowResource(tracking_uri=env["MLFLOW_TRACKING_URI"], artifact_root=env["MLFLOW_ARTIFACT_ROOT"]),
        "alert_sink": AlertSink(kind="log"),
    }
    sim = Simulation(resources, dg.DagsterInstance.ephemeral())
    # Simulation.bootstrap without the ingestion checks (tested elsewhere): the 90 days' features, then a retrain.
    result = materialize_days(BIKE_RENTALS, resources, "2011-01-01", "2011-03-31", selection=dg.AssetSelection.assets(
        "raw_rentals", "validated_rentals", "quarantined_rentals", "rental_features").without_checks())
    assert result.success
    sim.retrain("2011-01-01", FIRST, "first champion")
    assert sim.champion() == "1", sim.retrains


VOLATILE = {"run_id", "dagster_run_id", "timestamp", "created_at", "generated_at", "written_at"}


def _stable(value):
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


MISSING = object()


def _differences(a, b, path: str = "") -> list[str]:
    """Where two values differ, as paths to the differing leaves (a frame counts as one leaf)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b))
                for d in _differences(a.get(k, MISSING), b.get(k, MISSING), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]")]
    if isinstance(a, pl.DataFrame) and isinstance(b, pl.DataFrame):
        return [] if a.equals(b) else [f"{path}: frames differ"]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def _lake(root: Path) -> dict[str, object]:
    """Every file of a lake, parquet as frames and JSON as data (minus run ids and timestamps)."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = path.relative_to(root).as_posix()
        if path.suffix == ".parquet":
            out[key] = pl.read_parquet(path)
        elif path.suffix == ".json":
            out[key] = _stable(json.loads(path.read_text()))
        elif "/data_docs/" in key:  # a rendering that shows when it was validated: its presence is compared
            out[key] = "page"
        else:
            out[key] = path.read_bytes()
    return out


def test_a_backfill_on_two_celery_workers_equals_the_in_process_run(celery_env, workers, tmp_path, monkeypatch):
    started = time.time()
    _bootstrap(tmp_path, celery_env)  # while the workers start
    bootstrap_seconds = time.time() - started
    lake_celery, lake_local = Path(celery_env["LAKE_ROOT"]), tmp_path / "lake_local"
    shutil.copytree(lake_celery, lake_local)
    _wait_until_ready(workers)

    # The backfill of FIRST..LAST as one run (the daily assets' BackfillPolicy.single_run()), launched the
    # way the daemon or `dagster job execute` does: from the code location, reconstructable by the workers.
    recon = ReconstructableRepository.for_module("orchestration.definitions", "defs", working_directory=str(ROOT))
    job = recon.get_reconstructable_job("daily_rentals")
    assert job.get_definition().executor_def.name == "celery"
    with dg.DagsterInstance.from_config(celery_env["DAGSTER_HOME"]) as instance:
        with dg.execute_job(job, instance, tags=RANGE_TAGS) as result:
            assert result.success, _logs(workers)
            run_id = result.run_id
        records = instance.all_logs(run_id)
    celery_seconds = time.time() - started - bootstrap_seconds

    # Every step ran in a worker, and both workers took some.
    starts = [r for r in records if r.dagster_event and r.dagster_event.event_type == dg.DagsterEventType.STEP_START]
    steps = {r.step_key for r in starts}
    ran_on = {}
    for r in records:
        event = r.dagster_event
        if event and event.event_type == dg.DagsterEventType.ENGINE_EVENT and event.step_key:
            worker = event.engine_event_data.metadata.get("Celery worker")
            if worker is not None:
                ran_on[event.step_key] = worker.value.split("@")[0]
    assert len(steps) >= 10 and set(ran_on) == steps, (steps, ran_on)
    assert set(ran_on.values()) == {name for name, _, _ in workers}, ran_on
    step_pids = {r.dagster_event.pid for r in starts}
    assert os.getpid() not in step_pids and len(step_pids) >= 2, step_pids

    # The same days in process (the embedded default) into a copy of the lake as it was before the backfill.
    monkeypatch.delenv("DAGSTER_EXECUTOR")
    monkeypatch.setenv("LAKE_ROOT", str(lake_local))
    from orchestration.definitions import defs

    local_job = defs().resolve_job_def("daily_rentals")
    assert local_job.executor_def.name == "in_process"
    with dg.DagsterInstance.from_config(celery_env["DAGSTER_HOME"]) as instance:
        assert local_job.execute_in_process(instance=instance, tags=RANGE_TAGS).success

    celery, local = _lake(lake_celery), _lake(lake_local)
    assert sorted(celery) == sorted(local)
    for day in ("2011-04-01", "2011-04-02", "2011-04-03"):
        for stage in ("predictions/{}.parquet", "drift/{}.json", "performance/{}.json"):
            assert f"rentals/{stage.format(day)}" in celery
    different = [f"{k}{d}" for k in celery for d in _differences(celery[k], local[k])[:3]]
    assert not different, "celery and in-process lakes differ:\n" + "\n".join(different)
    print(f"bootstrap {bootstrap_seconds:.0f} s, celery backfill {celery_seconds:.0f} s, in process "
          f"{time.time() - started - bootstrap_seconds - celery_seconds:.0f} s; steps per worker: "
          f"{ {w: sum(v == w for v in ran_on.values()) for w in set(ran_on.values())} }")
