"""Materialize a use case's assets for a range of days in process, as a backfill run would."""

import dagster as dg

from orchestration.definitions import build_use_case
from resources.alerts import AlertSink
from resources.mlflow_tracking import MlflowResource

# Resources the selected assets do not touch still have to be bound; these are never called.
UNUSED = {"mlflow": MlflowResource(tracking_uri="sqlite:///unused.db"), "alert_sink": AlertSink()}


def materialize_days(spec, resources: dict, first: str, last: str | None = None, selection=None,
                     instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    defs = build_use_case(spec)
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last or first}
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=selection,
        resources={**UNUSED, **resources},
        instance=instance or dg.DagsterInstance.ephemeral(),
        tags=tags,
        raise_on_error=False,
    )

