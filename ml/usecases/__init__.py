"""Registered use cases: every module of this package defines one `SPEC`; they are found, not listed.

A use case replays its history from `data/<name>.csv`; `REPLAY_FILES` names the histories shipped
under another file name (the bike file keeps its published name, for the credit).
"""

import importlib
import pkgutil

from ml.spec import UseCaseSpec
from ml.usecases.bike_rentals import SPEC as BIKE_RENTALS

REPLAY_FILES: dict[str, str] = {BIKE_RENTALS.name: "data/bike_sharing_hourly.csv"}


def _discover() -> dict[str, UseCaseSpec]:
    specs = [importlib.import_module(f"{__name__}.{m.name}").SPEC for m in pkgutil.iter_modules(__path__)]
    return {s.name: s for s in specs}


def replay_file(spec: UseCaseSpec) -> str:
    return REPLAY_FILES.get(spec.name, f"data/{spec.name}.csv")


USE_CASES: dict[str, UseCaseSpec] = _discover()
