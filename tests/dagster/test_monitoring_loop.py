"""The loop on generated days: a strong covariate shift gets a retrain within the persistence; days
drawn from the champion's own training distribution raise no alert and no retrain."""

import dataclasses
from datetime import date, timedelta

import polars as pl
import pytest

from ml.generator import generate_rentals, load_reference, to_csv_bytes
from ml.monitoring import DRIFT_WINDOW_DAYS
from ml.retrain_policy import RetrainPolicy
from orchestration.simulation import Simulation
from resources.sources import LandingSource, ReplaySource

pytestmark = pytest.mark.slow

CUTOFF = date(2011, 4, 1)
# Every drifted day counts here (no corroboration by the label-free estimate): these tests are about
# the drift machinery from the daily graph to the sensor; the policy's own rules are unit-tested.
POLICY = RetrainPolicy(drift_persistence=3, drift_min_estimated_ratio=0.0, mae_degradation=3.0,
                       degradation_persistence=3, cooldown_days=7)


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

    def land(day: date, seed: int, malformed_rate: float = 0.0, **knobs) -> str:
        # Drawn from the champion's training window (a February day), then dated as the new day.
        frame = generate_rentals(spec, date(2011, 2, 15) + timedelta(days=seed % 30), 24, seed,
                                 reference=window, **knobs).with_columns(pl.lit(day).alias("dteday"))
        payload = to_csv_bytes(spec, frame, malformed_rate=malformed_rate, seed=seed)
        (folder / spec.file_name(day.isoformat())).write_bytes(payload.data)
        return day.isoformat()

    return folder, land


def simulate(spec, tmp_path, folder, land, days: int, bad_days: tuple[int, ...] = (), **knobs) -> Simulation:
    sim = Simulation.fresh(tmp_path / "sim", POLICY, source=LandingSource(url=str(folder)))
    sim.bootstrap("2011-01-01", CUTOFF.isoformat())
    for i in range(days):
        assert sim.day(land(CUTOFF + timedelta(days=i), seed=i, malformed_rate=0.25 if i in bad_days else 0.0, **knobs))
    return sim


def test_strong_covariate_shift_launches_a_retrain_within_the_persistence(spec, tmp_path, landed):
    folder, land = landed
    shift = {"temp": 0.35, "atemp": 0.35, "hum": -0.35, "windspeed": 0.3}
    days = DRIFT_WINDOW_DAYS + POLICY.drift_persistence
    sim = simulate(spec, tmp_path, folder, land, days=days, bad_days=(days - 1,), covariate_shift=shift)
    verdicts = {d: sim.storage.read_json(f"rentals/drift/{d}.json")["drifted"]
                for d in (CUTOFF + timedelta(days=i) for i in range(DRIFT_WINDOW_DAYS + POLICY.drift_persistence))
                for d in [d.isoformat()]}
    first_drift = min(d for d, drifted in verdicts.items() if drifted)
    # Detected once the shifted days dominate the week, then acted on after the persistence.
    assert (date.fromisoformat(first_drift) - CUTOFF).days < DRIFT_WINDOW_DAYS
    launched = sim.retrains[1:]
    assert launched, f"no retrain was launched; verdicts {verdicts}"
    waited = (date.fromisoformat(launched[0]["day"]) - date.fromisoformat(first_drift)).days + 1
    assert waited == POLICY.drift_persistence
    assert "drift persisted" in launched[0]["reason"]
    assert any(a.endswith("|rental_drift_report|drift") for a in sim.alerts)
    # On the day that also had malformed rows, the breach is the root cause: one alert, for data.
    bad_day = (CUTOFF + timedelta(days=days - 1)).isoformat()
    assert f"{bad_day}|raw_rentals|contract_breach" in sim.alerts
    assert f"{bad_day}|rental_drift_report|drift" not in sim.alerts


def test_days_like_the_training_data_raise_no_alert_and_no_retrain(spec, tmp_path, landed):
    folder, land = landed
    sim = simulate(spec, tmp_path, folder, land, days=20)
    assert sim.retrains[1:] == []
    assert sim.alerts == []
