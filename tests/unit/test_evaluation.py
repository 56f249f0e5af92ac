"""Metrics, slices, the paired bootstrap and the fleet figure, checked against hand-made cases."""

import math

import numpy as np
import polars as pl
import pytest

from ml.evaluation import (
    UNKNOWN,
    business_impact,
    metrics_by_slice,
    paired_bootstrap,
    regression_metrics,
    slice_labels,
)
from ml.usecases.bike_rentals import SPEC


def test_regression_metrics_by_hand():
    m = regression_metrics([0, 10, 20, 40], [2, 8, 26, 40])
    # errors 2, -2, 6, 0
    assert m["n"] == 4
    assert m["mae"] == pytest.approx(10 / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((4 + 4 + 36 + 0) / 4))
    # MAPE skips the zero-count hour: (2/10 + 6/20 + 0/40) / 3
    assert m["mape"] == pytest.approx((0.2 + 0.3 + 0.0) / 3)


def test_mape_is_nan_without_positive_counts_and_shapes_must_match():
    assert math.isnan(regression_metrics([0, 0], [1, 2])["mape"])
    with pytest.raises(ValueError, match="shape"):
        regression_metrics([1, 2, 3], [1, 2])


@pytest.fixture(scope="module")
def frame():
    return pl.DataFrame({
        "season": [1, 2, 3, 4, 1, None],
        "weathersit": [1, 2, 3, 4, 1, 1],
        "workingday": [0, 1, 0, 1, 0, 1],
        "hr": [0, 5, 6, 9, 10, 23],
    })


def test_slice_labels_follow_the_spec(frame):
    labels = {name: s.to_list() for name, s in slice_labels(SPEC, frame).items()}
    assert list(labels) == [s.name for s in SPEC.slices]
    assert labels["season"] == ["winter", "spring", "summer", "fall", "winter", UNKNOWN]
    assert labels["workingday"] == ["off_day", "working_day"] * 3
    # right-open bins (0, 6, 10, 16, 20, 24): 6 is the morning peak's first hour, 10 is midday's
    assert labels["hour_band"] == ["night", "night", "morning_peak", "morning_peak", "midday", "late"]


def test_slices_cover_every_row_exactly_once():
    hours = pl.DataFrame({"season": [1] * 30, "weathersit": [1] * 30, "workingday": [1] * 30,
                          "hr": list(range(-2, 28))})
    y = np.arange(30.0)
    rows = metrics_by_slice(SPEC, hours, y, y + 1)
    for s in SPEC.slices:
        segments = [r for r in rows if r["slice"] == s.name]
        assert sum(r["n"] for r in segments) == hours.height, s.name
    bands = {r["segment"]: r["n"] for r in rows if r["slice"] == "hour_band"}
    assert bands == {"night": 6, "morning_peak": 4, "midday": 6, "evening_peak": 4, "late": 4, UNKNOWN: 6}


def test_metrics_by_slice_match_the_overall_formula_on_each_segment(frame):
    y = np.array([10.0, 20, 30, 40, 50, 60])
    p = np.array([12.0, 20, 27, 40, 55, 60])
    rows = metrics_by_slice(SPEC, frame, y, p)
    winter = next(r for r in rows if (r["slice"], r["segment"]) == ("season", "winter"))
    assert winter == {"slice": "season", "segment": "winter", **regression_metrics([10, 50], [12, 55])}
    assert {"slice", "segment", "n", "mae", "rmse", "mape"} == set(rows[0])


def _noisy(y, scale, seed):
    return y + np.random.default_rng(seed).normal(0, scale, y.size)


Y = np.random.default_rng(0).poisson(200, 24 * 60).astype(float)


def test_bootstrap_sees_a_clearly_better_model():
    result = paired_bootstrap(Y, _noisy(Y, 30, 1), _noisy(Y, 20, 2), n_boot=500, seed=3)
    assert result.mae_diff < 0
    assert result.ci_high < 0 and result.significant
    assert result.p_better > 0.99
    assert result.n_units == Y.size


def test_bootstrap_does_not_see_a_difference_between_equal_models():
    result = paired_bootstrap(Y, _noisy(Y, 25, 1), _noisy(Y, 25, 2), n_boot=500, seed=3)
    assert result.ci_low < 0 < result.ci_high
    assert not result.significant
    assert 0.025 < result.p_better < 0.975
    same = paired_bootstrap(Y, Y + 5, Y + 5, n_boot=200, seed=3)
    assert same.mae_diff == 0 and same.p_better == 0 and not same.significant


def test_day_blocks_widen_the_interval_when_errors_share_a_day():
    days = np.repeat(np.arange(60), 24)
    rng = np.random.default_rng(4)
    day_offset = rng.normal(0, 20, 60)[days]  # a bad day hurts the challenger on every hour of it
    champion, challenger = _noisy(Y, 20, 5), Y + day_offset + rng.normal(0, 5, Y.size)
    by_row = paired_bootstrap(Y, champion, challenger, n_boot=500, seed=6)
    by_day = paired_bootstrap(Y, champion, challenger, n_boot=500, seed=6, blocks=days)
    assert by_day.n_units == 60
    assert by_day.mae_diff == pytest.approx(by_row.mae_diff)
    assert (by_day.ci_high - by_day.ci_low) > 2 * (by_row.ci_high - by_row.ci_low)


def test_bootstrap_is_seeded():
    a = paired_bootstrap(Y, _noisy(Y, 30, 1), _noisy(Y, 20, 2), n_boot=300, seed=9)
    assert a == paired_bootstrap(Y, _noisy(Y, 30, 1), _noisy(Y, 20, 2), n_boot=300, seed=9)


def test_business_impact_by_hand():
    y = np.array([10.0, 0, 5, 20] * 12)  # two days of 24 hours
    p = np.array([7.0, 2, 5, 26] * 12)
    impact = business_impact(y, p)
    assert impact["days"] == 2
    assert impact["short_per_day"] == pytest.approx(3 * 12 / 2)
    assert impact["idle_per_day"] == pytest.approx((2 + 6) * 12 / 2)
    assert impact["demand_per_day"] == pytest.approx(35 * 12 / 2)
    assert impact["short_share_of_demand"] == pytest.approx(3 / 35)
    # short + idle is the absolute error: n x MAE spread over the days
    total = (impact["short_per_day"] + impact["idle_per_day"]) * impact["days"]
    assert total == pytest.approx(y.size * regression_metrics(y, p)["mae"])


def test_business_impact_counts_distinct_days_when_given():
    impact = business_impact([1.0, 2, 3], [0.0, 2, 5], days=["d1", "d1", "d2"])
    assert impact["days"] == 2
    assert impact["short_per_day"] == pytest.approx(0.5)
    assert impact["idle_per_day"] == pytest.approx(1.0)
