"""The code location: `dagster dev -w workspace.yaml` or `-m orchestration.definitions`."""

import dagster as dg

from assets.features import build_feature_assets
from assets.ingestion import build_ingestion_assets
from checks.features import build_feature_checks
from checks.ingestion import build_ingestion_checks
from ml.spec import UseCaseSpec
from ml.usecases import USE_CASES
from orchestration.resources import build_resources
from orchestration.sensors import build_landing_sensor


def build_use_case(spec: UseCaseSpec) -> dg.Definitions:
    """Every asset, check, job and sensor of one use case; a second use case is a second spec."""
    ingest = dg.define_asset_job(
        f"ingest_{spec.name}",
        selection=dg.AssetSelection.assets(*(f"{stage}_{spec.name}" for stage in ("raw", "validated", "quarantined"))),
        description="raw -> validated + quarantined for the selected days.",
    )
    return dg.Definitions(
        assets=[*build_ingestion_assets(spec), *build_feature_assets(spec)],
        asset_checks=[*build_ingestion_checks(spec), *build_feature_checks(spec)],
        jobs=[ingest],
        sensors=[build_landing_sensor(spec, ingest)],
    )


def build_definitions(specs: list[UseCaseSpec]) -> dg.Definitions:
    # Steps here take seconds and share one lake; the multiprocess executor would add ~3 s of
    # process start-up per step (measured), so runs execute in one process. Parallelism comes from
    # running partitions as separate runs (run queue / run launcher), not from steps.
    return dg.Definitions.merge(
        *(build_use_case(spec) for spec in specs),
        dg.Definitions(resources=build_resources(), executor=dg.in_process_executor),
    )


defs = build_definitions(list(USE_CASES.values()))
