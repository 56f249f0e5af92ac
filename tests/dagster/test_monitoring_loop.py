"""The loop on generated days: a strong covariate shift gets a retrain within the persistence; days
drawn from the champion's own training distribution raise no alert and no retrain."""

import dataclasses
from datetime import date, timedelta

import polars as pl
import pytest

from ml.generator import load_reference, to_csv_bytes
from ml.generator import generate_rentals
from ml.retrain_policy import RetrainPolicy
from orchestration.simulation import Simulation
from resources.sources import LandingSource, ReplaySource

pytestmark = pytest.mark.slow

CUTOFF = date(2011, 4, 1)
POLICY = RetrainPolicy(drift_persistence=3, mae_degradation=3.0, degradation_persistence=3, cooldown_days=7)


@pytest.fixture
def landed(spec, tmp_path):
    """A landing folder with the real first 90 days, and a function that lands a generated day."""
    folder = tmp_path / "landing"
    folder.mkdir()
    replay = ReplaySource()
    for i in range(90):
        day = (CUTOFF - timedelta(days=90 - i)).isoformat()
        (folder / spec.file_name(day)).write_bytes(replay.fetch(spec, day).content)
    full = load_reference(spec)
    window = dataclasses.replace(full, frame=full.frame.filter(pl.col("dteday") < CUTOFF))

    def land(day: date, seed: int, **knobs) -> str:
        # Drawn from the champion's training window (a February day), then dated as the new day.
        frame = generate_rentals(spec, date(2011, 2, 15) + timedelta(days=seed % 30), 24, seed,
                                 reference=window, **knobs).with_columns(pl.lit(day).alias("dteday"))
        (folder / spec.file_name(day.isoformat())).write_bytes(to_csv_bytes(spec, frame, seed=seed).data)
        return day.isoformat()

    return folder, land


def simulate(spec, tmp_path, folder, land, days: int, **knobs) -> Simulation:
    sim = Simulation.fresh(tmp_path / "sim", POLICY, source=LandingSource(url=str(folder)))
    sim.bootstrap("2011-01-01", CUTOFF.isoformat())
    for i in range(days):
        assert sim.day(land(CUTOFF + timedelta(days=i), seed=i, **knobs))
    return sim


def test_strong_covariate_shift_launches_a_retrain_within_the_persistence(spec, tmp_path, landed):
    folder, land = landed
    shift = {"temp": 0.35, "atemp": 0.35, "hum": -0.35, "windspeed": 0.3}
    sim = simulate(spec, tmp_path, folder, land, days=POLICY.drift_persistence + 2, covariate_shift=shift)
    launched = sim.retrains[1:]
    assert launched, "no retrain was launched"
    first = date.fromisoformat(launched[0]["day"])
    assert (first - CUTOFF).days + 1 <= POLICY.drift_persistence + 1
    assert "drift persisted" in launched[0]["reason"]
    assert any("drift" in a for a in sim.alerts)


def test_days_like_the_training_data_raise_no_alert_and_no_retrain(spec, tmp_path, landed):
    folder, land = landed
    sim = simulate(spec, tmp_path, folder, land, days=20)
    assert sim.retrains[1:] == []
    assert sim.alerts == []
