"""PostgreSQL, the Dagster instance's storage, restarted while a run is going.

A private PostgreSQL cluster (initdb in tmp, on a free loopback port; the machine's shared server is
never touched) holds the instance, configured by deploy/dagster.yaml as deployed. An ingest run of 20
days is a real `dagster job execute` subprocess; a failpoint (resources/failpoints.py, pause mode)
holds it in the middle of its features step, the test restarts or stops the server, and lets the run
go on. The run must end: it succeeds (dagster-postgres reconnects: it opens a connection per
operation and retries a failed connect), or it fails with a message naming the database connection.
Either way the run's events up to the outage are in the database, a rerun succeeds, and the lake and
the instance hold every partition.
"""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import pytest

from resources.storage import LocalStorage

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "bike_sharing_hourly.csv"
DEPLOY = ROOT / "deploy" / "dagster.yaml"
FIRST, LAST = "2011-01-01", "2011-01-20"
PAUSE_AT = "rentals/features/2011-01-10"  # the features step, half way through its days
RETRY_WARNING = "Retrying failed database connection"  # dagster_postgres.utils.retry_pg_connection_fn
GIVE_UP_AFTER = 6  # its retry_limit=5: the 6th failed attempt raises "too many retries for DB connection"
DAYS = [f"2011-01-{d:02d}" for d in range(1, 21)]
FOREIGN = ("LAKE_", "AWS_", "DAGSTER_", "MLFLOW_", "ML_FAILPOINT", "RENTALS_", "SEOUL_", "LANDING_", "ALERT_")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    path = found[-1] if found else shutil.which(name)
    assert path, f"{name} not found (PostgreSQL server binaries: /usr/lib/postgresql/*/bin)"
    return path


class Cluster:
    """A throw-away PostgreSQL cluster owned by `postgres` (initdb refuses root), trust auth on loopback."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="pg_restart_"))  # /tmp itself: postgres cannot enter pytest's tmp
        self.data, self.log, self.port = self.dir / "data", self.dir / "server.log", _free_port()
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_owner:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        self.ctl("start")

    def _run(self, *cmd: str) -> None:
        proc = subprocess.run([*self.as_owner, *cmd], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{cmd}: {proc.stdout}\n{proc.stderr}\n{self.server_log()}"

    def ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir}"
        self._run(_pg_bin("pg_ctl"), action, "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", *extra)

    def server_log(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else ""

    def create_database(self, name: str) -> None:
        import psycopg2

        admin = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        admin.autocommit = True
        admin.cursor().execute(f"CREATE DATABASE {name}")
        admin.close()

    def close(self) -> None:
        try:
            self.ctl("stop", "-m", "immediate")
        except AssertionError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture()
def private_postgres():
    cluster = Cluster()
    try:
        cluster.create_database("dagster")
        yield cluster
    finally:
        cluster.close()


def _env(root: Path, cluster: Cluster, pause: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    env.update(DAGSTER_HOME=str(root / "home"), LAKE_ROOT=str(root / "lake"), RENTALS_REPLAY_CSV=str(DATA),
               MLFLOW_TRACKING_URI=f"sqlite:///{root}/mlflow.db", MLFLOW_ARTIFACT_ROOT=str(root / "artifacts"),
               PYTHONPATH=str(ROOT), DAGSTER_PG_HOST="127.0.0.1", DAGSTER_PG_PORT=str(cluster.port),
               DAGSTER_PG_USER="postgres", DAGSTER_PG_PASSWORD="", DAGSTER_PG_DB="dagster")
    if pause:
        env.update(ML_FAILPOINT=f"after_temp_write:{PAUSE_AT}", ML_FAILPOINT_PAUSE=str(pause))
    return env


def _ingest(root: Path, cluster: Cluster, tag: str, pause: Path | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dagster", "job", "execute", "-m", "orchestration.definitions", "-j", "ingest_rentals",
           "--tags", json.dumps({"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST,
                                 "test/attempt": tag})]
    log = (root / f"{tag}.log").open("w")
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(root, cluster, pause), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _wait_for(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before {path.name}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {path.name} within {timeout:.0f} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)


def _wait_for_retries(log: Path, proc: subprocess.Popen, count: int, timeout: float = 300) -> None:
    """Until dagster-postgres has logged `count` failed connection attempts."""
    deadline = time.monotonic() + timeout
    while log.read_text().count(RETRY_WARNING) < count:
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before {count} retries:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"not {count} retries within {timeout:.0f} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        raise AssertionError(f"the run did not end within {timeout:.0f} s of the restart")


def _instance(root: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(root / "home"))


def _run_of(instance: dg.DagsterInstance, tag: str) -> dg.DagsterRun:
    [run] = instance.get_runs(dg.RunsFilter(tags={"test/attempt": tag}))
    return run


def _events(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.dagster_event.event_type.name for e in instance.all_logs(run_id) if e.dagster_event]


def _expected_lake(root: Path) -> None:
    storage = LocalStorage(root=str(root / "lake"))
    for day in DAYS:
        assert storage.read_json(f"rentals/raw/{day}/current.json")["rows"] > 0, day
        for stage in ("validated", "quarantined", "merged", "features"):
            assert storage.exists(f"rentals/{stage}/{day}.parquet"), (stage, day)
    assert storage.list_keys("rentals/features/") == [f"rentals/features/{d}.parquet" for d in DAYS]


# outage: (what happens to the server while the run is held, the run's expected end)
OUTAGES = {
    # Fast shutdown (every session terminated) and start, done before the run goes on: dagster-postgres
    # opens a connection per operation, so the run's next events go to the new server.
    "restart": "success",
    # Stopped, the run let go while it is down, started again once the run has given up a write:
    # dagster-postgres tries a refused connection 6 times over ~11 s, then raises; the step and the run
    # fail, and the failure (retried the same way) reaches the server once it is back.
    "down_until_a_write_gives_up": "failure",
}


@pytest.mark.parametrize("outage", list(OUTAGES))
def test_a_run_survives_or_fails_clearly_when_postgres_restarts_and_the_rerun_loses_nothing(
        outage, private_postgres, tmp_path, monkeypatch):
    cluster = private_postgres
    for k, v in _env(tmp_path, cluster, None).items():
        if k.startswith("DAGSTER_PG_"):  # for this process's instance: the test reads what the run wrote
            monkeypatch.setenv(k, v)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DEPLOY, home / "dagster.yaml")
    pause = tmp_path / "pause"
    pause.mkdir()

    first = _ingest(tmp_path, cluster, "first", pause)
    _wait_for(pause / "reached", first, tmp_path / "first.log")
    with _instance(tmp_path) as instance:  # the run is in the database, going, before the outage
        run = _run_of(instance, "first")
        assert run.status == dg.DagsterRunStatus.STARTED
        before = _events(instance, run.run_id)
        assert "RUN_START" in before and before.count("ASSET_MATERIALIZATION") >= 3  # raw, validated, quarantined
    if outage == "restart":
        cluster.ctl("restart", "-m", "fast")
        (pause / "release").touch()
    else:
        cluster.ctl("stop", "-m", "fast")
        (pause / "release").touch()
        _wait_for_retries(tmp_path / "first.log", first, GIVE_UP_AFTER)
        cluster.ctl("start")
    code = _finish(first)
    log = (tmp_path / "first.log").read_text()

    with _instance(tmp_path) as instance:
        run = _run_of(instance, "first")
        after = _events(instance, run.run_id)
        assert after[:len(before)] == before  # what was written before the outage is all there
        if OUTAGES[outage] == "success":
            assert run.status == dg.DagsterRunStatus.SUCCESS, log[-3000:]
            assert code == 0 and "RUN_SUCCESS" in after and "STEP_FAILURE" not in after, log[-3000:]
            assert after.count("ASSET_MATERIALIZATION") > before.count("ASSET_MATERIALIZATION")  # features, after it
        else:
            # Failed, and says why in the database: the step's error names the database connection.
            assert code != 0 and run.status == dg.DagsterRunStatus.FAILURE, (run.status, log[-3000:])
            errors = [str(e.dagster_event.event_specific_data.error.to_string()) for e in instance.all_logs(run.run_id)
                      if e.dagster_event and e.dagster_event.event_type.name == "STEP_FAILURE"]
            assert errors and any("too many retries for DB connection" in m and "Connection refused" in m
                                  for m in errors), errors
        outcome = run.status

    second = _ingest(tmp_path, cluster, "rerun")
    assert _finish(second) == 0, (tmp_path / "rerun.log").read_text()[-3000:]
    with _instance(tmp_path) as instance:
        rerun = _run_of(instance, "rerun")
        assert rerun.status == dg.DagsterRunStatus.SUCCESS
        for asset in ("raw_rentals", "validated_rentals", "quarantined_rentals", "rental_features"):
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) >= set(DAYS), asset
        assert _run_of(instance, "first").status == outcome  # its record stays as it ended
    _expected_lake(tmp_path)
    assert not list((tmp_path / "lake").rglob(".*.tmp"))  # the paused write was finished, not abandoned
