"""ReferenceStats: sketches, JSON round trip, thresholds calibrated on resampled windows of days."""

import json
from datetime import datetime

import numpy as np
import polars as pl
import pytest
from scipy import stats

from ml.drift import ReferenceStats, build_reference, compare
from ml.drift.calibration import FLOORS, QUANTILE_STEPS, bars, day_codes, window_draws, window_statistics
from ml.drift.reference import FALLBACK_THRESHOLDS
from ml.drift.statistics import js_divergence, proportions, psi


def _daily_frame(n_days=30, rows=100, odd_day=3, seed=0):
    """Stationary days except `odd_day`, whose x is shifted by +1."""
    rng = np.random.default_rng(seed)
    day = np.repeat(np.arange(n_days), rows)
    x = rng.normal(0, 1, day.size) + (day == odd_day)
    c = rng.choice(["a", "b", "c"], day.size, p=[0.5, 0.3, 0.2])
    return pl.DataFrame({"day": day, "x": np.round(x, 2), "c": c})


def _window(frame, days):
    inside = pl.col("day").is_in(list(days))
    return frame.filter(inside), frame.filter(~inside)


def test_resampled_ks_and_wasserstein_equal_scipy_between_each_window_and_the_rest_of_the_reference():
    """Window sums of day counts make the rest's CDF; W1 stays in the FULL reference's std."""
    frame = _daily_frame()
    reference = build_reference(frame, ["x"], day_column="day")
    assert reference.columns["x"].sketch.exact_ks
    draws = window_draws(30, 7, 20, seed=3)
    oof = window_statistics(reference, frame, day_codes(frame, "day"), draws)["x"]
    for b, days in enumerate(draws):
        inside, rest = _window(frame, days)
        assert oof["ks"][b] == pytest.approx(stats.ks_2samp(rest["x"], inside["x"]).statistic, abs=1e-9)
        w1 = stats.wasserstein_distance(rest["x"], inside["x"]) / frame["x"].to_numpy().std()
        assert oof["wasserstein"][b] == pytest.approx(w1, abs=1e-9)


def test_a_resample_is_scored_against_the_reference_minus_its_days():
    frame = _daily_frame()
    reference = build_reference(frame, ["x", "c"], ["c"], day_column="day")
    draws = np.array([[3, 10, 11, 12, 13, 14, 15], [0, 1, 2, 4, 5, 6, 7]])
    oof = window_statistics(reference, frame, day_codes(frame, "day"), draws)
    edges = reference.columns["x"].sketch.edges
    share = lambda x: np.bincount(np.searchsorted(edges, x), minlength=edges.size + 1) / x.size  # noqa: E731
    categories = lambda f: proportions(f["c"].value_counts().sort("c")["count"].to_numpy())  # noqa: E731
    for b, days in enumerate(draws):
        inside, rest = _window(frame, days)
        p, q = share(rest["x"].to_numpy()), share(inside["x"].to_numpy())
        assert oof["x"]["psi"][b] == pytest.approx(psi(p, q), abs=1e-9)
        assert oof["x"]["js"][b] == pytest.approx(js_divergence(p, q), abs=1e-9)
        assert oof["c"]["js"][b] == pytest.approx(js_divergence(categories(rest), categories(inside)), abs=1e-9)
    in_sample = compare(reference, _window(frame, draws[0])[0]).columns[0].stats["psi"]
    assert oof["x"]["psi"][0] > in_sample  # the window with the odd day does not vouch for itself


def test_windows_are_distinct_random_days():
    draws = window_draws(90, 7, 300, seed=0)
    assert draws.shape == (300, 7) and draws.min() >= 0 and draws.max() < 90
    assert all(np.unique(row).size == 7 for row in draws)
    assert np.unique(draws).size == 90  # every day is drawn, not one contiguous stretch
    np.testing.assert_array_equal(draws, window_draws(90, 7, 300, seed=0))


def test_bars_are_the_smallest_common_quantile_whose_union_false_alarm_rate_is_alpha():
    values = np.random.default_rng(0).random((400, 3))  # three independent statistics
    floors = np.array([0.0, 0.0, 0.999])  # the third statistic's floor keeps it out of the union
    thresholds, level = bars(values, floors, alpha=0.05)
    union = lambda t: (values > t).any(axis=1).mean()  # noqa: E731
    assert union(thresholds) <= 0.05 and thresholds[2] == 0.999
    # with two independent statistics each must fire on ~2.5 %, not 5 %
    assert 0.97 < level < 0.98 and (values[:, 0] > thresholds[0]).mean() < 0.03
    lower = np.maximum(np.quantile(values, level - 0.05 / (QUANTILE_STEPS - 1), axis=0), floors)
    assert union(lower) > 0.05  # one grid step lower would fire too often


def test_calibrated_bars_hold_the_union_false_alarm_rate_on_the_resamples():
    frame = _daily_frame(odd_day=-1)
    reference = build_reference(frame, ["x", "c"], ["c"], day_column="day", alpha=0.05, n_resamples=200)
    oof = window_statistics(reference, frame, day_codes(frame, "day"), window_draws(30, 7, 200, seed=0))
    for name, col in reference.columns.items():
        values = np.stack([np.abs(oof[name][s]) for s in col.thresholds], axis=1)
        assert (values > np.array(list(col.thresholds.values()))).any(axis=1).mean() <= 0.05
        assert all(col.thresholds[s] >= FLOORS[s] for s in col.thresholds)
    assert reference.columns["x"].thresholds["ks"] > FLOORS["ks"]  # the noise of 700 rows, not a floor
    assert (reference.n_days, reference.window_days, reference.n_resamples) == (30, 7, 200)
    assert "200 windows of 7 random reference days" in reference.threshold_rule


def test_fewer_than_two_windows_of_days_keep_the_fixed_fallback_thresholds():
    frame = _daily_frame(n_days=13)
    reference = build_reference(frame, ["x", "c"], ["c"], day_column="day")
    assert reference.n_days == 0 and reference.threshold_rule == "fallback"
    assert reference.columns["x"].thresholds == FALLBACK_THRESHOLDS
    assert set(reference.columns["c"].thresholds) == {"psi", "js", "missing"}


def test_day_codes_cut_timestamps_to_their_date():
    hours = pl.datetime_range(datetime(2011, 1, 1), datetime(2011, 1, 3, 23), "1h", eager=True)
    codes = day_codes(pl.DataFrame({"t": hours.reverse()}), "t")
    np.testing.assert_array_equal(codes, np.repeat([2, 1, 0], 24))


def test_reference_stats_json_round_trip_keeps_every_field_and_every_verdict():
    frame = _daily_frame().with_columns(
        pl.when(pl.col("x") > 1.5).then(None).otherwise(pl.col("x")).alias("x"))
    reference = build_reference(frame, ["x", "c"], ["c"], target="x", day_column="day")
    restored = ReferenceStats.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert restored.to_dict() == reference.to_dict()
    current = _daily_frame(seed=9).with_columns(pl.col("x") * 1.5)  # some values out of range
    before, after = compare(reference, current), compare(restored, current)
    assert after.to_markdown() == before.to_markdown()
    for a, b in zip(after.columns, before.columns):
        np.testing.assert_array_equal(list(a.stats.values()), list(b.stats.values()))
    assert restored.columns["x"].role == "target" and restored.columns["x"].missing_rate > 0
    assert after.columns[0].stats["out_of_range"] > 0 and restored.n_days == 30


def test_reference_stats_from_another_format_version_is_rejected_with_what_to_do():
    data = build_reference(_daily_frame(), ["x"]).to_dict()
    with pytest.raises(ValueError, match="format 2 != 3: rebuild it from its reference frame"):
        ReferenceStats.from_dict({**data, "format_version": 2})


def test_numeric_sketch_has_deduplicated_quantile_edges_and_whole_bins_on_ties():
    values = np.r_[np.zeros(600), np.arange(1, 401) % 7]  # 60 % zeros
    sketch = build_reference(pl.DataFrame({"x": values}), ["x"]).columns["x"].sketch
    assert np.all(np.diff(sketch.edges) > 0) and sketch.edges[0] == 0
    assert sketch.bin_counts[0] == 600 + np.sum(np.arange(1, 401) % 7 == 0)
    assert sketch.bin_counts.sum() == values.size
    assert sketch.quantiles["0.5"] == np.quantile(values, 0.5)
    assert sketch.exact_ks and sketch.support.tolist() == list(range(7))
    assert (sketch.low, sketch.high) == (0, 6)
