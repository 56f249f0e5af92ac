"""Retrain sensor reads stored drift/performance results in day order and acts once per episode."""

import json

import dagster as dg
import polars as pl

from ml.retrain_policy import RetrainPolicy
from orchestration.definitions import build_use_case
from orchestration.monitoring_sensors import build_retrain_sensor
from resources.alerts import AlertSink
from resources.storage import LocalStorage


def write_day(storage, spec, day, drifted, features=("temp",), mae_ratio=1.0, version="1", estimated=1.3):
    storage.write_json(f"{spec.name}/drift/{day}.json",
                       {"day": day, "drifted": drifted, "drifted_features": list(features) if drifted else [],
                        "model_version": version, "estimated_mae_ratio": estimated})
    storage.write_json(f"{spec.name}/performance/{day}.json", {"day": day, "mae_ratio": mae_ratio})


def evaluate(sensor, storage, cursor=None):
    with dg.build_sensor_context(resources={"storage": storage, "alert_sink": AlertSink(kind="log")}, cursor=cursor,
                                 instance=dg.DagsterInstance.ephemeral()) as context:
        requests = list(sensor(context) or [])
        return requests, context.cursor


def test_retrain_requested_once_drift_persists_with_reason_and_cutoff(spec, tmp_path):
    storage = LocalStorage(root=str(tmp_path))
    job = next(j for j in build_use_case(spec).jobs if j.name == "retrain_rentals")
    sensor = build_retrain_sensor(spec, job, RetrainPolicy(drift_persistence=3))
    for i, drifted in enumerate([False, True, True]):
        write_day(storage, spec, f"2011-06-0{i + 1}", drifted)
    requests, cursor = evaluate(sensor, storage)
    assert requests == []
    write_day(storage, spec, "2011-06-04", True, ("temp", "hum"))
    write_day(storage, spec, "2011-06-05", True)
    requests, cursor = evaluate(sensor, storage, cursor)
    assert len(requests) == 1
    request = requests[0]
    assert request.tags["retrain/day"] == "2011-06-04"
    assert "drift persisted 3 days" in request.tags["retrain/reason"]
    assert json.loads(request.tags["retrain/evidence"])["features"] == ["hum", "temp"]
    assert request.run_config["ops"]["rental_training_set"]["config"]["cutoff"] == "2011-06-05"
    # Nothing new since the cursor: nothing requested again.
    assert evaluate(sensor, storage, cursor)[0] == []


def test_no_retrain_over_a_quiet_quarter(spec, tmp_path):
    storage = LocalStorage(root=str(tmp_path))
    job = next(j for j in build_use_case(spec).jobs if j.name == "retrain_rentals")
    sensor = build_retrain_sensor(spec, job, RetrainPolicy())
    import pandas as pd

    for day in pd.date_range("2011-04-01", "2011-06-30").date:
        write_day(storage, spec, day.isoformat(), False)
    assert evaluate(sensor, storage)[0] == []


def test_refused_retrains_are_retried_while_degradation_lasts_and_escalated_once(spec, tmp_path):
    """The champion never changes (every retrain refused): the sensor keeps trying after the cooldown,
    with the refusals in the evidence, and escalates once."""
    storage = LocalStorage(root=str(tmp_path))
    job = next(j for j in build_use_case(spec).jobs if j.name == "retrain_rentals")
    sensor = build_retrain_sensor(spec, job, RetrainPolicy(cooldown_days=7, escalate_after=2))
    import pandas as pd

    for day in pd.date_range("2011-06-01", "2011-07-30").date:
        write_day(storage, spec, day.isoformat(), False, mae_ratio=2.0)
    requests, cursor = evaluate(sensor, storage)
    days = [r.tags["retrain/day"] for r in requests]
    assert days[:3] == ["2011-06-02", "2011-06-09", "2011-06-23"]  # cooldown, then doubled
    assert len(json.loads(requests[1].tags["retrain/evidence"])["refusals"]) == 1
    state = json.loads(cursor)["state"]
    assert state["escalated"] and len(state["refusals"]) >= 2


def test_landing_sensor_scores_new_days_and_only_reingests_scored_ones(spec, tmp_path):
    """A late file must still be scored (daily job), but a day already scored is never rescored by a
    later model when its labels land (ingest job); with no champion yet, days are ingested only."""
    from assets.common import table_key
    from assets.training import model_name
    from orchestration.sensors import build_landing_sensor
    from resources.mlflow_tracking import CHAMPION, MlflowResource
    from resources.sources import LandingSource

    landing_dir = tmp_path / "landing"
    landing_dir.mkdir()
    for day in ("2011-06-01", "2011-06-02"):
        (landing_dir / spec.file_name(day)).write_text("dteday\n")  # contents are never read on a tick
    storage = LocalStorage(root=str(tmp_path / "lake"))
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", artifact_root=str(tmp_path / "art"))
    jobs = {j.name: j for j in build_use_case(spec).jobs}
    sensor = build_landing_sensor(spec, jobs["daily_rentals"], jobs["ingest_rentals"])

    def requested() -> dict[str, str]:
        resources = {"landing": LandingSource(url=str(landing_dir)), "storage": storage, "mlflow": mlflow}
        with dg.build_sensor_context(resources=resources, instance=dg.DagsterInstance.ephemeral()) as context:
            return {r.partition_key: r.job_name for r in sensor(context)}

    assert requested() == {"2011-06-01": "ingest_rentals", "2011-06-02": "ingest_rentals"}
    client = mlflow.client()
    client.create_registered_model(model_name(spec))
    version = client.create_model_version(model_name(spec), source=str(tmp_path / "art"))
    client.set_registered_model_alias(model_name(spec), CHAMPION, version.version)
    storage.write_parquet(table_key(spec, "predictions", "2011-06-01"), pl.DataFrame({"cnt": [1.0]}))
    assert requested() == {"2011-06-01": "ingest_rentals", "2011-06-02": "daily_rentals"}


def test_each_alert_sensor_pages_only_about_its_own_use_case(spec):
    from ml.usecases import USE_CASES
    from orchestration.monitoring_sensors import belongs

    seoul = next(s for s in USE_CASES.values() if s.name == "seoul_bikes")
    for asset in ("raw_rentals", "validated_rentals", "rental_features", "rental_model_evaluation"):
        assert belongs(spec, asset=asset) and not belongs(seoul, asset=asset)
    for asset in ("raw_seoul_bikes", "seoul_bike_drift_report"):
        assert belongs(seoul, asset=asset) and not belongs(spec, asset=asset)
    for job in ("daily_rentals", "retrain_rentals", "rollback_rentals_champion"):
        assert belongs(spec, job=job) and not belongs(seoul, job=job)
    assert belongs(seoul, job="daily_seoul_bikes") and not belongs(spec, job="daily_seoul_bikes")
    assert not belongs(spec, job="__ASSET_JOB")


def test_a_day_killed_between_drift_and_performance_is_revisited_and_decisions_match(spec, tmp_path):
    """Day 2's run died after the drift step: its labels are there, its performance report is not.
    The sensor must not decide past it; once the report exists, it decides exactly as without the kill."""
    from assets.common import table_key

    def lake(name, interrupted):
        storage = LocalStorage(root=str(tmp_path / name))
        for i in range(1, 6):
            day = f"2011-06-0{i}"
            write_day(storage, spec, day, False, mae_ratio=2.0)
            storage.write_parquet(table_key(spec, "features", day), pl.DataFrame({spec.target: [10, 12]}))
        if interrupted:
            (tmp_path / name / "rentals" / "performance" / "2011-06-02.json").unlink()
        return storage

    job = next(j for j in build_use_case(spec).jobs if j.name == "retrain_rentals")
    sensor = build_retrain_sensor(spec, job, RetrainPolicy(degradation_persistence=2))
    whole, whole_cursor = evaluate(sensor, lake("whole", False))
    storage = lake("killed", True)
    first, cursor = evaluate(sensor, storage)
    assert first == [] and json.loads(cursor)["last_day"] == "2011-06-01"
    write_day(storage, spec, "2011-06-02", False, mae_ratio=2.0)  # the rerun writes the report
    second, cursor = evaluate(sensor, storage, cursor)
    assert [r.tags["retrain/day"] for r in second] == [r.tags["retrain/day"] for r in whole] == ["2011-06-02"]
    assert json.loads(cursor) == json.loads(whole_cursor)


def test_a_file_missing_its_landing_deadline_is_paged_once_to_the_data_owner(spec, tmp_path, monkeypatch, caplog):
    """raw's FreshnessPolicy is judged by Dagster's freshness daemon (one iteration here, as the daemon
    of `dg dev` runs it), not by runs: fresh right after a landing, failed once no file landed in the
    24 h before a 06:00 deadline; the alert sensor turns the failure into one alert for the overdue day."""
    import asyncio
    from datetime import datetime, timedelta, timezone

    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget, freeze_time
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._daemon.freshness import FreshnessDaemon

    from assets.ingestion import overdue_day
    from orchestration.definitions import defs as location
    from orchestration.simulation import sent_alerts

    monkeypatch.setenv("LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    defs = location()
    repo = defs.get_repository_def()
    origin = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="orchestration.definitions", attribute="defs"))
    home = tmp_path / "home"
    home.mkdir()
    # As deploy/dagster-local.yaml: a consolidated event log, which the alert sensor reads across runs.
    consolidated = {"module": "dagster.core.storage.event_log", "class": "ConsolidatedSqliteEventLogStorage",
                    "config": {"base_dir": str(home)}}
    with dg.instance_for_test(temp_dir=str(home), overrides={"event_log_storage": consolidated}) as instance:

        def judge_freshness_and_alert(cursor: str | None) -> tuple[list[str], str | None]:
            with WorkspaceProcessContext(instance, InProcessTestWorkspaceLoadTarget(origin)) as workspace:
                asyncio.run(FreshnessDaemon()._evaluate_assets(workspace))
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources,
                                         repository_def=repo) as context:
                data = repo.get_sensor_def("rentals_alert_sensor").evaluate_tick(context)
            return sent_alerts(data.cursor), data.cursor

        landed = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, partition_key="2011-06-01", asset_selection=[dg.AssetKey("raw_rentals")])
        assert landed.success
        sent, cursor = judge_freshness_and_alert(None)
        assert not [a for a in sent if a.endswith("|freshness")]  # landed just now: fresh

        late = datetime.now(timezone.utc) + timedelta(days=2)  # past a deadline with no landing in its 24 h
        with freeze_time(late):
            sent, cursor = judge_freshness_and_alert(cursor)
            again, _ = judge_freshness_and_alert(cursor)
    deadline = late.replace(hour=6, minute=0, second=0, microsecond=0)
    deadline -= timedelta(days=deadline > late)
    day = (deadline - timedelta(days=1)).date().isoformat()  # the day whose file was due at that deadline
    assert overdue_day(late.timestamp()) == day
    assert [a for a in sent if a.endswith("|freshness")] == [f"{day}|raw_rentals|freshness"]
    assert again == sent  # one alert per day and cause
    [text] = [r.getMessage() for r in caplog.records if r.name == "alerts" and "[freshness]" in r.getMessage()]
    assert f"raw_rentals {day}: no file landed for {day} by 06:00 UTC" in text and "owner: team:data-platform" in text
