"""The code location: `dagster dev -w workspace.yaml` or `-m orchestration.definitions`."""

from __future__ import annotations

import dagster as dg

from assets.ingestion import build_ingestion_assets
from checks.ingestion import build_ingestion_checks
from ml.spec import UseCaseSpec
from ml.usecases import USE_CASES
from orchestration.resources import build_resources


def build_use_case(spec: UseCaseSpec) -> tuple[list, list]:
    """Every asset and check of one use case; a second use case is a second spec, not a copy."""
    return build_ingestion_assets(spec), build_ingestion_checks(spec)


def build_definitions(specs: list[UseCaseSpec]) -> dg.Definitions:
    assets, checks = [], []
    for spec in specs:
        a, c = build_use_case(spec)
        assets += a
        checks += c
    return dg.Definitions(assets=assets, asset_checks=checks, resources=build_resources())


defs = build_definitions(list(USE_CASES.values()))
