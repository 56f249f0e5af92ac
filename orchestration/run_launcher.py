"""A run launcher that lets Dagster's run monitoring see run workers that died.

Dagster's monitoring daemon asks the instance's run launcher whether the worker of each STARTED run
is still alive (`check_run_worker_health`); the stock `DefaultRunLauncher` (runs as subprocesses of
the code server) cannot answer, so a run whose worker vanished without recording an end — the
orchestration host or container SIGKILLed, OOM-killed or restarted together with its code servers —
stays STARTED for ever and holds a slot of the QueuedRunCoordinator. This subclass launches exactly
like `DefaultRunLauncher` and answers the question by process id.

Configured in dagster.yaml like any launcher (no config of its own):

    run_launcher:
      module: orchestration.run_launcher
      class: LocalProcessRunLauncher
"""

import os
import socket

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus

# The host whose code server started the run's worker, recorded at launch.
WORKER_HOST_TAG = "run_monitoring/worker_host"
# Dagster's run worker (dagster/_grpc/impl.py) records its pid in this engine event before the run
# starts; `EngineEventData.in_process` puts it in the metadata entry "pid".
_WORKER_STARTED_MESSAGE = "Started process for run (pid:"
# The pid event is among the first engine events of a run; read no further than this.
_EVENT_SCAN_LIMIT = 50
# A process that holds the worker's pid but started this long after the worker recorded its pid is a
# later process that reused the pid. Generous, so that wall-clock steps never make a live worker dead.
_PID_REUSE_SLACK_SECONDS = 60.0


class LocalProcessRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` plus a run worker health check for Dagster's run monitoring.

    The worker's pid comes from the run's "Started process for run (pid: N)" engine event. The
    worker is RUNNING while a process with that pid exists, is not a zombie and did not start after
    the event (pid reuse, read from /proc/<pid>/stat); otherwise FAILED, and the monitoring daemon
    marks the run failed (and `run_retries` may retry it). A run that ended normally is never
    failed: its worker writes the run's final status before exiting, and both this check and the
    monitor re-read the status after finding the process gone.

    Limits:
    * A pid means something only on the host that started the worker. The default launcher starts
      workers as subprocesses of the launching process's code server, so this launcher tags each run
      with the launching host (`run_monitoring/worker_host`) and judges only runs launched from the
      host it runs on; any other run is reported RUNNING (unknown), and only `max_runtime_seconds` /
      the `dagster/max_runtime` tag can end it. With the QueuedRunCoordinator the daemon launches
      every run, so runs are checked by the daemon that launched them — keep the daemon and its code
      servers (workspace.yaml `python_module` / `python_file` entries) in one host or container; a
      `grpc_server` on another host defeats it. Runs launched before this launcher was configured,
      and runs executed in-process (`dagster job execute`, `materialize`) carry no tag and are never
      judged.
    * The pid-reuse and zombie checks read /proc (Linux). Elsewhere only `os.kill(pid, 0)` is used:
      a reused pid would then look alive.
    * Supports no resume: set `run_monitoring.max_resume_run_attempts: 0`.
    * On Kubernetes use dagster-k8s's `K8sRunLauncher`, whose run workers are Kubernetes jobs and
      which supports `check_run_worker_health` (and resume) natively; this launcher does not apply.
    """

    def launch_run(self, context: LaunchRunContext) -> None:
        # Tagged before the worker exists, so a monitored run always knows where its worker lives.
        self._instance.add_run_tags(context.dagster_run.run_id, {WORKER_HOST_TAG: socket.gethostname()})
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        host, here = run.tags.get(WORKER_HOST_TAG), socket.gethostname()
        if host != here:
            return CheckRunHealthResult(
                WorkerStatus.RUNNING, f"run worker host {host or 'unknown'} is not {here}: not checked")
        found = self._worker_pid(run.run_id)
        if found is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker has not recorded its pid yet")
        pid, recorded_at = found
        gone = _process_gone(pid, recorded_at)
        if gone is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} is alive", run_worker_id=str(pid))
        current = self._instance.get_run_by_id(run.run_id)
        if current is not None and current.is_finished:  # it ended normally, then its worker exited
            return CheckRunHealthResult(
                WorkerStatus.SUCCESS, f"run worker pid {pid} exited after the run ended ({current.status.value})",
                run_worker_id=str(pid))
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"run worker process (pid {pid}) on {here} is gone: {gone}", run_worker_id=str(pid))

    def _worker_pid(self, run_id: str) -> tuple[int, float] | None:
        """The pid the run's worker recorded, and when it recorded it (the latest such event)."""
        found = None
        for entry in self._instance.event_log_storage.get_logs_for_run(
            run_id, of_type={DagsterEventType.ENGINE_EVENT}, limit=_EVENT_SCAN_LIMIT
        ):
            event = entry.dagster_event
            if event is None or not (event.message or "").startswith(_WORKER_STARTED_MESSAGE):
                continue
            pid = getattr(event.event_specific_data, "metadata", {}).get("pid")
            if pid is not None:
                found = (int(pid.value), entry.timestamp)
        return found


def _process_gone(pid: int, recorded_at: float) -> str | None:
    """Why the process that recorded `pid` at `recorded_at` no longer runs, or None if it still does."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "no such process"
    except PermissionError:
        pass  # exists, owned by another user: /proc decides whether it is ours
    stat = _proc_stat(pid)
    if stat is None:
        return None  # no /proc (not Linux), or it just vanished: judged again at the next poll
    state, started_at = stat
    if state in ("Z", "X"):
        return "exited (zombie, not yet reaped)"
    if started_at is not None and started_at > recorded_at + _PID_REUSE_SLACK_SECONDS:
        return f"pid reused by a process started at {started_at:.0f}, after the worker recorded it at {recorded_at:.0f}"
    return None


def _proc_stat(pid: int) -> tuple[str, float | None] | None:
    """(state, start time as a Unix timestamp) of a process from /proc, or None if unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after "pid (comm)": comm may hold spaces
    except (OSError, IndexError):
        return None
    state = fields[0]
    try:
        with open("/proc/stat") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime "))
        return state, boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, StopIteration, IndexError, ValueError):
        return state, None
