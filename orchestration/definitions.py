"""The code location: `dg dev`, `dagster dev -w workspace.yaml` or `-m orchestration.definitions`."""

import os
from pathlib import Path

import dagster as dg

from assets.features import build_feature_assets
from assets.ingestion import build_ingestion_assets
from assets.monitoring import build_monitoring_assets
from assets.online import build_online_assets
from assets.promotion import build_promotion_assets, build_promotion_checks, build_rollback_job
from assets.training import build_training_assets
from checks.features import build_feature_checks
from checks.ingestion import build_ingestion_checks
from checks.serving import build_serving_checks
from ml.retrain_policy import RetrainPolicy
from ml.spec import UseCaseSpec
from orchestration.monitoring_sensors import build_alert_sensor, build_labels_sensor, build_retrain_sensor
from orchestration.resources import build_resources
from orchestration.sensors import build_landing_sensor


def daily_selection(spec: UseCaseSpec) -> dg.AssetSelection:
    """Everything partitioned by day: ingest, features, scoring and monitoring."""
    return dg.AssetSelection.assets(
        f"raw_{spec.name}", f"validated_{spec.name}", f"quarantined_{spec.name}", spec.asset("features"),
        spec.asset("batch_predictions"), spec.asset("drift_report"), spec.asset("performance_report"),
    )


def retrain_selection(spec: UseCaseSpec) -> dg.AssetSelection:
    """Training set -> candidate -> reference statistics -> gate -> promotion."""
    return dg.AssetSelection.assets(*(spec.asset(a) for a in (
        "training_set", "candidate_model", "reference_statistics", "model_evaluation", "champion_model")))


def build_use_case(spec: UseCaseSpec, policy: RetrainPolicy = RetrainPolicy()) -> dg.Definitions:
    """Every asset, check, job and sensor of one use case; a second use case is a second spec."""
    raw = f"raw_{spec.name}"
    ingest = dg.define_asset_job(
        f"ingest_{spec.name}",
        selection=dg.AssetSelection.assets(*(f"{s}_{spec.name}" for s in ("raw", "validated", "quarantined")),
                                           spec.asset("features")).without_checks()
        | dg.AssetSelection.checks_for_assets(raw, f"validated_{spec.name}", spec.asset("features")),
        description="raw -> validated + quarantined -> features for the selected days.",
    )
    daily = dg.define_asset_job(f"daily_{spec.name}", selection=daily_selection(spec),
                                description="One day end to end: ingest, features, score, monitor.")
    performance = dg.define_asset_job(f"performance_{spec.name}",
                                      selection=dg.AssetSelection.assets(spec.asset("performance_report")),
                                      description="A day's performance report, once its late labels have landed.")
    online = dg.define_asset_job(f"online_{spec.name}", selection=dg.AssetSelection.assets(
        spec.asset("online_predictions"), spec.asset("online_drift_report")),
        description="The model server's sampled traffic of a day, then its drift report (serving/).")
    retrain = dg.define_asset_job(f"retrain_{spec.name}", selection=retrain_selection(spec),
                                  description="Train a challenger on the latest window; promote it if the gate passes.")
    return dg.Definitions(
        assets=[*build_ingestion_assets(spec), *build_feature_assets(spec), *build_training_assets(spec),
                *build_promotion_assets(spec), *build_monitoring_assets(spec), *build_online_assets(spec)],
        asset_checks=[*build_ingestion_checks(spec), *build_feature_checks(spec), *build_promotion_checks(spec),
                      *build_serving_checks(spec)],
        jobs=[ingest, daily, performance, online, retrain, build_rollback_job(spec)],
        schedules=[
            dg.build_schedule_from_partitioned_job(daily, hour_of_day=6, name=f"daily_{spec.name}_schedule"),
            # Yesterday's traffic: the servers flush their request logs every few seconds, long before.
            dg.build_schedule_from_partitioned_job(online, hour_of_day=6, minute_of_hour=30,
                                                   name=f"online_{spec.name}_schedule"),
            # Tagged like the sensor's retrains, so the instance runs one retrain per use case at a time.
            dg.ScheduleDefinition(name=f"weekly_{spec.name}_retrain", job=retrain, cron_schedule="0 3 * * 1",
                                  tags={"retrain/use_case": spec.name, "retrain/reason": "weekly schedule"}),
        ],
        sensors=[
            build_landing_sensor(spec, daily, ingest),
            build_retrain_sensor(spec, retrain, policy),
            build_labels_sensor(spec, performance),
            build_alert_sensor(spec, policy),
        ],
    )


def platform(specs: list[UseCaseSpec]) -> dg.Definitions:
    """What every use case shares: resources (a source per use case) and the executor, chosen by
    `DAGSTER_EXECUTOR` (docs/distributed-execution.md):

    | variable | default | |
    | --- | --- | --- |
    | `DAGSTER_EXECUTOR` | `in_process` | `celery` sends each step to Celery workers (dagster-celery) |
    | `DAGSTER_CELERY_BROKER` | `pyamqp://guest@127.0.0.1:5672//` | the workers' broker (RabbitMQ) |
    | `DAGSTER_CELERY_BACKEND` | `rpc://` | where workers send step results back to the run |
    | `DAGSTER_CELERY_QUEUE` | `dagster` | the steps' queue (workers: `-q`); a `dagster-celery/queue` op tag wins |
    """
    # Steps here take seconds and share one lake; the multiprocess executor would add ~3 s of
    # process start-up per step (measured), so runs execute in one process by default (the embedded
    # default needs no service). Parallelism comes from running partitions as separate runs (run
    # queue / run launcher), not from steps. Celery spreads steps over machines instead, at the price
    # of a broker, workers with this code and environment, and a shared instance, lake and MLflow.
    kind = (os.getenv("DAGSTER_EXECUTOR") or "in_process").strip().lower().replace("-", "_")
    if kind == "in_process":
        executor = dg.in_process_executor
    elif kind == "celery":
        from dagster_celery import celery_executor

        def setting(name: str, default: str) -> str | dict:
            # A variable that is set is read by Dagster when the run starts: its value (a broker
            # password) stays out of the definitions.
            return {"env": name} if os.getenv(name) else default

        executor = celery_executor.configured({
            "broker": setting("DAGSTER_CELERY_BROKER", "pyamqp://guest@127.0.0.1:5672//"),
            "backend": setting("DAGSTER_CELERY_BACKEND", "rpc://"),
            "config_source": {"task_default_queue": os.getenv("DAGSTER_CELERY_QUEUE", "dagster")},
        }, name="celery")
    else:
        raise ValueError(f"DAGSTER_EXECUTOR={kind!r}: expected 'in_process' (the default) or 'celery'")
    return dg.Definitions(resources=build_resources(specs), executor=executor)


def build_definitions(specs: list[UseCaseSpec]) -> dg.Definitions:
    """The module path: use cases given as Python specs."""
    return dg.Definitions.merge(*(build_use_case(spec) for spec in specs), platform(specs))


@dg.definitions
def defs() -> dg.Definitions:
    """The code location for `dg`, `dagster -m orchestration.definitions` and workspace.yaml alike: the
    use cases declared as `MLUseCase` components in orchestration/defs/*/defs.yaml."""
    from orchestration.components import MLUseCase  # the component imports build_use_case from here

    tree = dg.ComponentTree.for_project(Path(__file__))
    specs = [use_case.use_case_spec() for use_case in tree.get_all_components(of_type=MLUseCase)]
    return dg.Definitions.merge(tree.build_defs(), platform(specs))
