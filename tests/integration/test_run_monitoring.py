"""Run monitoring (deploy/dagster.yaml) frees the run queue of a run whose worker was SIGKILLed.

The production instance config on a fresh PostgreSQL database, with one queue slot and a fast
monitoring poll. A daemon's sensor queues a sleeping run, then a quick one; the daemon launches the
sleeping one and the quick one waits. Then the daemon, its code server and the run worker are all
SIGKILLed (the orchestration host or container dies), leaving the run STARTED and the only slot
taken. (A worker killed alone is failed by its surviving code server already.) A restarted daemon's
monitor must fail the run (LocalProcessRunLauncher finds its worker gone), the queued quick run must
then run and succeed, and run_retries must retry the killed run once.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from orchestration.run_launcher import WORKER_HOST_TAG, LocalProcessRunLauncher

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "dagster.yaml"
CODE = Path(__file__).with_name("sleepy_job.py")
BIN = Path(sys.executable).parent


def _instance_config() -> dict:
    config = yaml.safe_load(DEPLOY.read_text())
    # What this test relies on, as deployed.
    assert config["run_launcher"] == {"module": "orchestration.run_launcher", "class": "LocalProcessRunLauncher"}
    assert config["run_monitoring"]["enabled"] and config["run_monitoring"]["max_resume_run_attempts"] == 0
    assert config["run_retries"] == {"enabled": True, "max_retries": 1, "retry_on_asset_or_op_failure": False}
    assert {"key": "retrain/use_case", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in \
        config["run_coordinator"]["config"]["tag_concurrency_limits"]
    config["run_coordinator"]["config"].update(max_concurrent_runs=1, dequeue_interval_seconds=1)
    config["run_monitoring"]["poll_interval_seconds"] = 2
    return config


def _descendants(pid: int) -> set[int]:
    """pid and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        found.add(p)
        todo.extend(c for c in children.get(p, []) if c not in found)
    return found


def _kill_all(proc: subprocess.Popen) -> None:
    """SIGKILL a process started in its own session, every descendant and its process group."""
    if proc.poll() is None:  # once reaped, its pid may belong to someone else: only the group is left
        for pid in _descendants(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


class Stack:
    """Daemons on one DAGSTER_HOME, all killed at the end with every process below them."""

    def __init__(self, tmp: Path, env: dict):
        self.tmp, self.env, self.procs, self.logs, self.files = tmp, env, [], [], []
        self.workspace = tmp / "workspace.yaml"
        self.workspace.write_text(yaml.safe_dump({"load_from": [
            {"python_file": {"relative_path": str(CODE), "location_name": "sleepy", "working_directory": str(tmp)}}]}))

    def daemon(self) -> subprocess.Popen:
        log = self.tmp / f"daemon{len(self.logs)}.log"
        self.logs.append(log)
        self.files.append(log.open("w"))
        proc = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(self.workspace)], cwd=self.tmp,
                                env=self.env, stdout=self.files[-1], stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            _kill_all(proc)
        for f in self.files:
            f.close()

    def log_tail(self) -> str:
        return "\n".join(f"--- {log.name}\n" + log.read_text()[-3000:] for log in self.logs if log.exists())


def _wait(stack: Stack, what: str, timeout: float, probe):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:.0f} s: {what}\n{stack.log_tail()}")


def _status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus | None:
    run = instance.get_run_by_id(run_id)
    return run.status if run else None


def _sensor_run(instance: dg.DagsterInstance, job: str) -> str | None:
    runs = instance.get_runs(dg.RunsFilter(job_name=job, tags={"dagster/run_key": job}))
    return runs[0].run_id if runs else None


def _worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        if entry.dagster_event.message.startswith("Started process for run"):
            return int(entry.dagster_event.event_specific_data.metadata["pid"].value)
    return None


@pytest.mark.integration
@pytest.mark.slow
def test_monitor_fails_a_run_whose_worker_was_killed_and_frees_the_queue(tmp_path, postgres_db, monkeypatch):
    assert not dg.DefaultRunLauncher().supports_check_run_worker_health  # why the launcher exists
    assert LocalProcessRunLauncher().supports_check_run_worker_health
    for k, v in postgres_db.items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(_instance_config()))
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    stack = Stack(tmp_path, env)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            first = stack.daemon()  # its sensor submits sleepy, then quick, to the queue
            sleepy = _wait(stack, "the sensor's sleepy run", 60, lambda: _sensor_run(instance, "sleepy"))
            quick = _wait(stack, "the sensor's quick run", 10, lambda: _sensor_run(instance, "quick"))
            pid = _wait(stack, "the sleepy run STARTED with a worker pid", 60, lambda: (
                _status(instance, sleepy) == dg.DagsterRunStatus.STARTED and _worker_pid(instance, sleepy)))
            assert pid in _descendants(first.pid)  # daemon -> code server -> run worker
            assert instance.get_run_by_id(sleepy).tags[WORKER_HOST_TAG]
            assert _status(instance, quick) == dg.DagsterRunStatus.QUEUED  # the only slot is taken

            # The daemon's host dies: daemon, code server and run worker SIGKILLed together.
            _kill_all(first)
            time.sleep(2)
            assert _status(instance, sleepy) == dg.DagsterRunStatus.STARTED  # nothing left to notice
            assert _status(instance, quick) == dg.DagsterRunStatus.QUEUED

            stack.daemon()  # restarted: its monitor finds the worker gone
            _wait(stack, "the killed run FAILED", 60, lambda: _status(instance, sleepy) == dg.DagsterRunStatus.FAILURE)
            failure = instance.all_logs(sleepy, of_type=dg.DagsterEventType.RUN_FAILURE)[-1].dagster_event.message
            assert "Detected run worker status FAILED" in failure and f"(pid {pid})" in failure, failure

            # The queue is free again: the quick run is launched and succeeds.
            _wait(stack, "the queued quick run succeeded", 60, lambda: _status(instance, quick) in (
                dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED))
            assert _status(instance, quick) == dg.DagsterRunStatus.SUCCESS

            # run_retries re-executes the killed run once.
            retries = _wait(stack, "a retry of the killed run", 30, lambda: instance.get_runs(
                dg.RunsFilter(tags={"dagster/parent_run_id": sleepy})))
            assert len(retries) == 1 and retries[0].job_name == "sleepy"
            assert retries[0].tags["dagster/retry_number"] == "1"
            assert instance.get_run_by_id(sleepy).tags["dagster/will_retry"] == "true"
            # The daemon creates the retry (NOT_STARTED) and then submits it to the queue: wait for the submit.
            status = _wait(stack, "the retry submitted", 30, lambda: (
                s if (s := _status(instance, retries[0].run_id)) != dg.DagsterRunStatus.NOT_STARTED else None))
            assert status in (  # queued behind quick; launched once it ended
                dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)
    finally:
        stack.close()
