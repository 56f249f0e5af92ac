"""Run a use case's assets in process on an ephemeral instance, as the daily job would."""

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
