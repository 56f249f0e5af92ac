"""Drift verdicts on the real bike data: quiet on fresh days, loud on real shifts."""

import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ml.drift import build_reference, compare
from ml.usecases.bike_rentals import SPEC

DATA = Path(__file__).resolve().parents[2] / "data" / "bike_sharing_hourly.csv"
FEATURES = [c.name for c in SPEC.input_columns]
CATEGORICAL = [c.name for c in SPEC.input_columns if c.categorical]


@pytest.fixture(scope="module")
def summer_split():
    """Summer 2012 (a stationary period): the reference days and 30 random held-out days."""
    frame = pl.read_csv(DATA, try_parse_dates=True).filter(
        pl.col("dteday").is_between(pl.date(2012, 6, 1), pl.date(2012, 8, 31)))
    frame = frame.with_columns(prediction=pl.col("cnt").mean().over("hr", "workingday"))
    days = frame["dteday"].unique().sort()
    held = days.gather(np.random.default_rng(0).choice(days.len(), 30, replace=False))
    return (frame.filter(~pl.col("dteday").is_in(held.implode())),
            [frame.filter(pl.col("dteday") == d) for d in held])


def summer_reference(frame: pl.DataFrame, window_days: int):
    """Bars calibrated for windows of `window_days`, the size of what the test judges."""
    return build_reference(frame, [*FEATURES, "prediction", "cnt"], CATEGORICAL, prediction="prediction",
                           target="cnt", day_column="dteday", window_days=window_days)


@pytest.fixture(scope="module")
def summer(summer_split):
    """The reference calibrated for single days, and the held-out days."""
    frame, days = summer_split
    return summer_reference(frame, 1), days


def test_thirty_fresh_days_from_a_stationary_period_raise_no_dataset_drift(summer):
    reference, days = summer
    reports = [compare(reference, day) for day in days]
    assert sum(r.drifted for r in reports) <= 1
    assert np.mean([r.share_drifted for r in reports]) < 0.1


def test_fresh_iid_samples_across_seeds_raise_no_drift():
    def sample(seed, n):
        rng = np.random.default_rng(seed)
        return pl.DataFrame({"day": np.arange(n) // 500, "x": rng.normal(0, 1, n),
                             "y": rng.gamma(2, 1, n), "k": rng.choice(4, n, p=[.4, .3, .2, .1])})

    reference = build_reference(sample(0, 20_000), ["x", "y", "k"], ["k"], day_column="day", window_days=1)
    reports = [compare(reference, sample(seed, 500)) for seed in range(1, 41)]
    assert not any(r.drifted for r in reports)
    assert np.mean([r.share_drifted for r in reports]) < 0.1


def test_temperature_shift_of_0_3_is_flagged_on_days_and_on_a_month(summer, summer_split):
    reference, days = summer
    shifted = [compare(reference, d.with_columns(pl.col("temp") + 0.3)) for d in days]
    assert np.mean(["temp" in r.drifted_features for r in shifted]) >= 0.8
    monthly = summer_reference(summer_split[0], 30)
    month = compare(monthly, pl.concat(days).with_columns(pl.col("temp") + 0.3))
    assert "temp" in month.drifted_features
    assert "temp" not in compare(monthly, pl.concat(days)).drifted_features


def test_broad_covariate_shift_makes_the_dataset_drift(summer_split):
    frame, days = summer_split
    reference = summer_reference(frame, 7)  # what the monitor judges: the last week
    assert not compare(reference, pl.concat(days[:7])).drifted
    winter_like = pl.concat(days[:7]).with_columns(
        pl.col("temp", "atemp") - 0.4, pl.col("hum") * 0.5, season=pl.lit(1), mnth=pl.lit(1),
        weathersit=pl.lit(3), windspeed=pl.col("windspeed") + 0.3)
    assert compare(reference, winter_like).drifted


def test_prediction_drift_alone_makes_the_dataset_drift(summer):
    reference, days = summer
    report = compare(reference, days[0].with_columns(pl.col("prediction") * 3))
    prediction = next(c for c in report.columns if c.role == "prediction")
    assert prediction.drifted and report.share_drifted < report.drift_share
    assert report.drifted


def test_tiny_shift_on_a_huge_sample_is_significant_but_not_drift():
    rng = np.random.default_rng(5)
    reference = build_reference(
        pl.DataFrame({"day": np.arange(400_000) // 20_000, "x": rng.normal(0, 1, 400_000)}),
        ["x"], day_column="day", window_days=5)
    report = compare(reference, pl.DataFrame({"x": rng.normal(0.02, 1, 400_000)}))
    row = report.columns[0]
    assert row.stats["ks_pvalue"] < 1e-6
    assert not row.drifted


def test_a_shift_in_the_tails_only_is_drifted_by_the_wasserstein_distance_alone():
    """0.5 % -> 2 % of the rows from a 50 times wider normal: the deciles and the CDF barely move."""
    rng = np.random.default_rng(11)

    def sample(n, share):
        return np.where(rng.random(n) < share, rng.normal(0, 50, n), rng.normal(0, 1, n))

    reference = build_reference(pl.DataFrame({"day": np.arange(90_000) // 1000, "x": sample(90_000, 0.005)}),
                                ["x"], day_column="day")
    row = compare(reference, pl.DataFrame({"x": sample(7000, 0.02)})).columns[0]
    assert row.drifted_by == ("wasserstein",)
    assert not compare(reference, pl.DataFrame({"x": sample(7000, 0.005)})).columns[0].drifted


def test_missing_rate_increase_is_detected(summer):
    reference, days = summer
    day = days[0].with_columns(
        pl.when(pl.col("hr") < 8).then(None).otherwise(pl.col("hum")).alias("hum"))
    row = next(c for c in compare(reference, day).columns if c.column == "hum")
    assert row.stats["missing"] == pytest.approx(8 / day.height)
    assert "missing" in row.drifted_by


def test_markdown_and_png_show_every_column_and_the_verdict(summer):
    reference, days = summer
    report = compare(reference, days[0].with_columns(pl.col("temp") + 0.3))
    markdown = report.to_markdown()
    assert all(f"| {name} |" in markdown for name in reference.columns)
    assert "| temp | feature |" in markdown and "no drift" in markdown and "| out of range |" in markdown
    assert "| W1/sd (thr) |" in markdown
    temp = next(c for c in report.columns if c.column == "temp")
    assert temp.stats["out_of_range"] > 0 and f"| {temp.stats['out_of_range']:.3g} | yes |" in markdown


def test_outputs_of_a_model_younger_than_the_window_are_shown_as_not_judged(summer_split):
    from ml.monitoring import DRIFT_WINDOW_DAYS, window_drift

    frame, days = summer_split
    reference = summer_reference(frame, DRIFT_WINDOW_DAYS)
    # The prediction of a model three days in service, doubled: far off, yet too few days to judge.
    scored = pl.concat(days[:3]).with_columns(pl.col("prediction") * 2)
    report = window_drift(SPEC, reference, pl.concat(days[:DRIFT_WINDOW_DAYS]), scored)
    outputs = [c for c in report.columns if c.role != "feature"]
    assert outputs and all(not c.drifted and c.not_judged for c in outputs)
    reason = f"not judged: model younger than {DRIFT_WINDOW_DAYS} days"
    rows = [line for line in report.to_markdown().splitlines() if line.startswith("| prediction |")]
    assert rows and rows[0].endswith(f"| {reason} |")
    # Judged columns keep their plain verdict, and the unjudged ones do not count in the largest effect.
    assert all(line.endswith(("| no |", "| yes |")) for line in report.to_markdown().splitlines()
               if "| feature |" in line)
    judged = [c.effect for c in report.columns if c.role == "feature" and not np.isnan(c.effect)]
    assert report.max_effect == pytest.approx(max(judged))


def test_effect_heat_map_and_series_render_as_png():
    from ml.drift.report import render_effect_heatmap_png, render_series_png

    days = ["2011-04-01", "2011-04-02", "2011-04-03"]
    heat = render_effect_heatmap_png(days, ["temp", "hum"], np.array([[0.2, 1.5, np.nan], [0.1, 0.3, 0.9]]))
    series = render_series_png(days, {"a": [1.0, np.nan, 2.0], "b": [np.nan] * 3}, "t", "MAE")
    assert heat.startswith(b"\x89PNG") and series.startswith(b"\x89PNG")


def red_pixels(png: bytes) -> int:
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int((rgb[..., 0] - np.maximum(rgb[..., 1], rgb[..., 2]) > 50).sum())


def test_the_heat_map_paints_a_drifted_cell_red_and_the_others_not():
    from ml.drift.report import render_effect_heatmap_png

    days = [f"2011-04-{d:02d}" for d in range(1, 8)]
    calm = np.full((3, 7), 0.3)
    drifted = calm.copy()
    drifted[1, 6] = 4.0
    # The colour bar's red end is always drawn; only a drifted cell adds a red block inside the axes.
    assert red_pixels(render_effect_heatmap_png(days, ["temp", "hum", "windspeed"], drifted)) > \
        red_pixels(render_effect_heatmap_png(days, ["temp", "hum", "windspeed"], calm)) + 500


def test_large_frames_use_threads_per_column_with_the_same_results(monkeypatch):
    """Above PARALLEL_ROWS the columns are measured on threads; the reference and the report must be
    those of the sequential path, column for column and in order."""
    import ml.drift.sketch as sketch

    rng = np.random.default_rng(3)
    n = 2 * sketch.PARALLEL_ROWS
    frame = pl.DataFrame({"a": rng.normal(size=n), "b": rng.lognormal(size=n), "c": rng.poisson(3, n),
                          "k": rng.choice(["x", "y", "z"], n), "day": np.arange(n) * 30 // n})
    current = frame.with_columns(pl.col("a") + 0.3)

    def run():
        reference = build_reference(frame, ["a", "b", "c", "k"], ["k"], day_column="day", n_resamples=50)
        return reference.to_dict(), compare(reference, current)

    threaded = run()
    monkeypatch.setattr(sketch, "PARALLEL_ROWS", n + 1)
    sequential = run()
    assert threaded[0] == sequential[0]
    def rows(report):  # repr: NaN (statistics that do not apply) equals itself there
        return [repr((r.column, r.stats, r.thresholds, r.drifted_by)) for r in report.columns]

    assert rows(threaded[1]) == rows(sequential[1])
    assert [r.column for r in threaded[1].columns] == ["a", "b", "c", "k"]
    assert threaded[1].columns[0].drifted


def test_either_sort_gives_the_same_reference_and_report(monkeypatch):
    """`sorted_floats` takes numpy's or polars' sort, whichever is faster on the CPU: both must put the
    same values in the same order (null and NaN last, as NaN), so the reference and the report do not
    depend on the CPU."""
    import ml.drift.sketch as sketch

    monkeypatch.setattr(sketch, "PARALLEL_ROWS", 0)  # small columns always take numpy's: make both choices count
    rng = np.random.default_rng(5)
    n = 5_000
    values = np.where(rng.random(n) < 0.05, np.nan, rng.lognormal(size=n))
    series = pl.Series("a", values).set(pl.Series(rng.random(n) < 0.05), None)  # nulls and NaN both
    assert series.null_count() and series.is_nan().sum()
    frame = pl.DataFrame({"a": series, "t": rng.integers(0, 5, n).astype(float), "day": np.arange(n) * 10 // n})
    current = frame.with_columns(pl.col("a") * 1.2)
    outcomes = {}
    for numpy_sorts in (True, False):
        monkeypatch.setattr(sketch, "_numpy_sorts_faster", lambda numpy_sorts=numpy_sorts: numpy_sorts)
        floats = sketch.sorted_floats(series)
        reference = build_reference(frame, ["a", "t"], [], day_column="day", n_resamples=50)
        report = compare(reference, current)
        outcomes[numpy_sorts] = (floats.tobytes(), reference.to_dict(),
                                 [repr((r.column, r.stats, r.thresholds, r.drifted_by)) for r in report.columns])
    assert outcomes[True] == outcomes[False]
    assert np.isnan(np.frombuffer(outcomes[True][0])[-int(series.null_count() + series.is_nan().sum()):]).all()


def test_a_kept_picture_frame_draws_what_a_fresh_one_draws(monkeypatch):
    """The pictures reuse their figure between calls of the same shape; whatever the previous picture
    was (other cells, other days, a series missing, no point at all), the next one is drawn exactly as
    on a fresh figure."""
    import ml.drift.report as report

    rng = np.random.default_rng(5)
    days = [f"2011-04-{d:02d}" for d in range(1, 31)]
    later = [f"2011-05-{d:02d}" for d in range(1, 31)]
    columns = ["temp", "hum", "cnt (prediction)"]
    calm, stormy = rng.random((3, 30)), rng.random((3, 30)) * 6
    calm[0, :3] = np.nan
    series = {"realized": list(rng.random(30) * 40), "shadow": [np.nan] * 30, "estimated": list(rng.random(30) * 30)}
    empty = {name: [np.nan] * 30 for name in series}
    shifted = {"realized": [np.nan] * 30, "shadow": list(rng.random(30) * 400), "estimated": list(rng.random(30))}

    def pictures():
        return (report.render_effect_heatmap_png(days, columns, calm),
                report.render_series_png(days, series, "MAE by day", "MAE"))

    monkeypatch.setattr(report, "_FRAMES", {})
    fresh = pictures()
    report.render_effect_heatmap_png(later, columns, stormy)
    report.render_series_png(later, empty, "MAE by day", "MAE")
    assert pictures() == fresh
    report.render_series_png(later, shifted, "other title", "bikes")
    assert pictures() == fresh
    assert len(report._FRAMES) == 2  # one frame per shape, reused
    # A series without a point is drawn as if it were not there (colours and legend included).
    present = {name: values for name, values in series.items() if name != "shadow"}
    assert report.render_series_png(days, present, "MAE by day", "MAE") == fresh[1]
