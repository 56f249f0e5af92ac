"""Run a use case's jobs in process, as the schedules and sensors would, on a given instance."""

import dagster as dg

from orchestration.definitions import build_use_case


def materialize_days(spec, resources: dict, first: str, last: str | None = None, selection=None,
                     instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    defs = build_use_case(spec)
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last or first}
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=selection,
        resources=resources,
        instance=instance or dg.DagsterInstance.ephemeral(),
        tags=tags,
        raise_on_error=False,
    )


def run_job(spec, name: str, resources: dict, instance: dg.DagsterInstance, *, first: str | None = None,
            last: str | None = None, run_config: dict | None = None, tags: dict | None = None):
    """Execute one of the use case's real jobs (daily, retrain, rollback) in process."""
    defs = dg.Definitions.merge(build_use_case(spec), dg.Definitions(resources=resources))
    job = defs.resolve_job_def(name)
    range_tags = ({"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last or first}
                  if first else {})
    return job.execute_in_process(instance=instance, run_config=run_config, tags={**range_tags, **(tags or {})},
                                  raise_on_error=False)
