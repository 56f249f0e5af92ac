"""Thresholds from sampling noise: fresh windows of the reference's own process rarely fire, a
half-standard-deviation shift does, and so does April against a Jan-Mar bike reference."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ml.drift import build_reference, compare

DATA = Path(__file__).resolve().parents[2] / "data" / "bike_sharing_hourly.csv"
COLUMNS = ["normal", "lognormal", "ties", "weather"]
DAY_SD = 0.2  # each day's own offset (its weather), in within-day standard deviations
WINDOW_DAYS, N_WINDOWS = 7, 200


def hourly_days(n_days: int, rng: np.random.Generator) -> pl.DataFrame:
    """24 rows a day; every column moves with a day-level offset of its own, as weather does."""
    day = np.repeat(np.arange(n_days), 24)
    offset = rng.normal(0, DAY_SD, (len(COLUMNS), n_days))[:, day]
    return pl.DataFrame({
        "day": day,
        "normal": rng.normal(offset[0], 1.0),
        "lognormal": rng.lognormal(offset[1], 0.5),
        "ties": rng.poisson(np.exp(0.7 + offset[2])).astype(np.float64),  # ~85 % ties on 0..4
        "weather": np.digitize(3 * offset[3] + rng.normal(0, 1, day.size), [-1.0, 0.5, 1.5]),
    })


@pytest.fixture(scope="module")
def process():
    """A 90-day reference and 200 fresh 7-day windows drawn from the same process."""
    rng = np.random.default_rng(0)
    reference = hourly_days(90, rng)
    fresh = hourly_days(WINDOW_DAYS * N_WINDOWS, rng)
    windows = fresh.with_columns(pl.col("day") // WINDOW_DAYS).partition_by("day")
    return reference, windows, {c: fresh[c].std() for c in COLUMNS}


def alarm_rate(reference, windows) -> dict[str, float]:
    """Share of the windows in which each column is called drifted."""
    reports = [compare(reference, w.select(COLUMNS)) for w in windows]
    return {c: np.mean([c in r.drifted_features for r in reports]) for c in COLUMNS}


def test_fresh_windows_of_random_days_rarely_fire_on_any_column(process):
    frame, windows, _ = process
    reference = build_reference(frame, COLUMNS, ["weather"], day_column="day")
    assert max(alarm_rate(reference, windows).values()) <= 0.05


def test_bars_that_ignore_day_level_variation_would_fire_on_fresh_windows(process):
    """The day offsets matter: rows shuffled across days calibrate bars for pure row noise."""
    frame, windows, _ = process
    shuffled = frame.with_columns(pl.col("day").shuffle(seed=1))
    reference = build_reference(shuffled, COLUMNS, ["weather"], day_column="day")
    assert max(alarm_rate(reference, windows).values()) > 0.1


@pytest.mark.parametrize("column", ["normal", "lognormal", "ties"])
def test_a_half_standard_deviation_shift_is_detected_in_95_percent_of_windows(process, column):
    frame, windows, sd = process
    reference = build_reference(frame, COLUMNS, ["weather"], day_column="day")
    shifted = [w.with_columns(pl.col(column) + 0.5 * sd[column]) for w in windows]
    assert alarm_rate(reference, shifted)[column] >= 0.95


def test_a_week_of_april_2011_drifts_on_temperature_against_january_to_march():
    bikes = pl.read_csv(DATA, try_parse_dates=True)
    columns = ["hr", "weathersit", "temp", "atemp", "hum", "windspeed"]
    winter = bikes.filter(pl.col("dteday").is_between(pl.date(2011, 1, 1), pl.date(2011, 3, 31)))
    reference = build_reference(winter, columns, ["weathersit"], day_column="dteday")
    april = bikes.filter(pl.col("dteday").is_between(pl.date(2011, 4, 14), pl.date(2011, 4, 20)))
    report = compare(reference, april)
    assert {"temp", "atemp"} <= set(report.drifted_features)
    assert "hr" not in report.drifted_features  # the hours of a day do not change with seasons
    assert reference.n_days == 90 and reference.window_days == 7
