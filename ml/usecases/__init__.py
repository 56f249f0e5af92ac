"""Registered use cases. Add a module with a `SPEC` and list it here."""

from ml.spec import UseCaseSpec
from ml.usecases.bike_rentals import SPEC as BIKE_RENTALS

USE_CASES: dict[str, UseCaseSpec] = {BIKE_RENTALS.name: BIKE_RENTALS}
