from pathlib import Path

import pytest

from ml.usecases import BIKE_RENTALS
from resources.sources import ReplaySource

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "bike_sharing_hourly.csv"


@pytest.fixture(scope="session")
def spec():
    return BIKE_RENTALS


@pytest.fixture(scope="session")
def replay():
    return ReplaySource(csv_path=str(DATA))


@pytest.fixture(scope="session")
def june_first(spec, replay) -> bytes:
    """One real day (24 hourly rows) exactly as the replay serves it."""
    return replay.fetch(spec, "2011-06-01").content
