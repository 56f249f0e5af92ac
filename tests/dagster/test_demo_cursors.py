"""`make demo` hands over to the daemon: on the demo's instance, the sensor daemon of workspace.yaml's
code location (what `make ui` runs) evaluates every sensor once more from the cursors the demo stored,
and requests no run and sends no alert; the runs the demo's sensors launched are the ones its run-key
dedup finds."""

import io
import logging
import shutil
from contextlib import redirect_stderr, redirect_stdout
from datetime import date

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorType, TickStatus
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._daemon.sensor import execute_sensor_iteration, fetch_existing_runs

from orchestration import demo
from orchestration.simulation import ROOT, WORKSPACE, sent_alerts

pytestmark = pytest.mark.slow

# The champion's MAE degrades in early April 2011: the retrain sensor launches a retrain on
# 2011-04-04 (refused by the gate), and the alert sensor pages the degradation and the refusal.
LIVE_DAYS = 5


def cursors(instance: dg.DagsterInstance) -> dict[str, str | None]:
    return {s.instigator_name: s.instigator_data.cursor
            for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)}


@pytest.fixture(scope="module")
def handed_over(tmp_path_factory):
    """The demo on a short span, on a fresh SQLite instance configured as deploy/dagster-local.yaml,
    then one iteration of the sensor daemon on the code location loaded from workspace.yaml."""
    root = tmp_path_factory.mktemp("demo")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster-local.yaml", home / "dagster.yaml")
    with pytest.MonkeyPatch.context() as env:
        env.chdir(ROOT)
        for name in ("LAKE_S3_BUCKET", "DAGSTER_EXECUTOR", "ALERT_WEBHOOK_URL"):
            env.delenv(name, raising=False)
        # Inherited by the code server the workspace starts, so the daemon's sensors see the same lake.
        env.setenv("DAGSTER_HOME", str(home))
        env.setenv("LAKE_ROOT", str(root / "lake"))
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        env.setenv("MLFLOW_ARTIFACT_ROOT", str(root / "artifacts"))
        env.setenv("ALERT_SINK", "log")
        with dg.DagsterInstance.get() as instance:
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                sim, failed = demo.live(instance, date(2011, 1, 1), LIVE_DAYS)
            before = {"runs": instance.get_runs_count(), "cursors": cursors(instance)}
            with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(WORKSPACE)])) as context:
                entries = context.create_request_context().get_code_location_entries()
                assert [e.load_error for e in entries.values()] == [None]
                (entry,) = entries.values()
                sensors = [s for repo in entry.code_location.get_repositories().values() for s in repo.get_sensors()]
                list(execute_sensor_iteration(context, logging.getLogger("dagster.daemon.SensorDaemon"), None, None))
                ticks = {s.name: instance.get_ticks(s.get_remote_origin_id(), s.selector_id) for s in sensors}
                launched = {s.name: {r.tags[RUN_KEY_TAG] for r in instance.get_runs(
                    dg.RunsFilter(tags={SENSOR_NAME_TAG: s.name})) if RUN_KEY_TAG in r.tags} for s in sensors}
                found = {s.name: set(fetch_existing_runs(instance, s, [dg.RunRequest(run_key=k)
                                                                       for k in launched[s.name]])) for s in sensors}
            after = {"runs": instance.get_runs_count(), "cursors": cursors(instance)}
            yield {"sim": sim, "failed": failed, "before": before, "after": after, "ticks": ticks,
                   "running": {s.name for s in sensors if s.default_status == dg.DefaultSensorStatus.RUNNING},
                   "launched": launched, "found": found, "stdout": out.getvalue(), "stderr": err.getvalue()}


def test_the_demo_retrained_and_alerted(handed_over):
    sim = handed_over["sim"]
    assert handed_over["failed"] == []
    assert [r["day"] for r in sim.retrains[1:]], "no retrain launched by the sensor: the hand-over test is vacuous"
    assert sim.alerts, "no lifecycle alert sent"
    # The runs the sensors launched carry the daemon's run-key tags, and its dedup finds them.
    assert handed_over["launched"]["rentals_retrain_sensor"]
    assert handed_over["found"] == handed_over["launched"]


def test_the_daemon_continues_from_the_demo_without_a_run_or_an_alert(handed_over):
    ticks, before, after = handed_over["ticks"], handed_over["before"], handed_over["after"]
    assert {name for name, t in ticks.items() if t} == handed_over["running"]  # every running sensor evaluated once
    evaluated = {name: t[0] for name, t in ticks.items() if t}
    assert {name: (t.status, t.run_ids, t.run_keys) for name, t in evaluated.items()} == {
        name: (TickStatus.SKIPPED, [], []) for name in evaluated}
    assert after["runs"] == before["runs"]
    alert_sensors = [name for name in evaluated if name.endswith("_alert_sensor")]
    assert alert_sensors and all(evaluated[name].skip_reason == "nothing new" for name in alert_sensors)
    assert {n: sent_alerts(after["cursors"][n]) for n in alert_sensors} == {
        n: sent_alerts(before["cursors"][n]) for n in alert_sensors}
    assert after["cursors"] == before["cursors"]


def test_the_demo_prints_one_line_per_day_and_no_debug_stream(handed_over):
    lines = [line for line in handed_over["stdout"].splitlines() if line.startswith("[")]
    assert len(lines) == LIVE_DAYS
    assert lines[0].startswith(f"[1/{LIVE_DAYS} ") and "ETA" in lines[0] and "2011-04-01" in lines[0]
    assert all(" rows " in line and " v" in line and "est MAE" in line for line in lines)
    assert "bootstrap: champion v1" in handed_over["stdout"]
    # Dagster's event stream (STEP_START, ASSET_MATERIALIZATION, ... at DEBUG) stays in the instance.
    assert " - DEBUG - " not in handed_over["stderr"] and "STEP_START" not in handed_over["stderr"]
