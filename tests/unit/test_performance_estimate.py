"""Label-free performance estimate (Direct Loss Estimation): tracking, intervals, folds, serialisation."""

import json

import numpy as np
import polars as pl
import pytest

from ml.performance_estimate import (
    LabelFeedback,
    LossEstimator,
    daily_mae,
    day_folds,
    estimate_daily,
    fit_loss_estimator,
    out_of_fold_predictions,
)

HOURS = 48  # rows per day: enough that a day's realized MAE is not mostly sampling noise
NAMES = ["hour_sin", "hour_cos", "storm", "constant"]


def synthetic(n_days: int, seed: int):
    """Demand with a daily cycle; noise scale grows with the day's `storm` level (heteroscedastic)."""
    rng = np.random.default_rng(seed)
    days = np.repeat(np.arange(n_days), HOURS)
    angle = 2 * np.pi * np.tile(np.arange(HOURS), n_days) / HOURS
    storm = np.repeat(rng.uniform(0, 1, n_days), HOURS) + rng.normal(0, 0.02, days.size)
    X = np.column_stack([np.sin(angle), np.cos(angle), storm, np.ones_like(angle)])
    y = 100 + 30 * np.sin(angle) + rng.normal(0, 2 + 30 * np.clip(storm, 0, None))
    return X, y, days


def least_squares(X_train, y_train, X_test):
    """The 'served model' of the tests: a linear fit on the cyclic features (the mean is right; the noise is not)."""
    coef, *_ = np.linalg.lstsq(X_train[:, [0, 1, 3]], y_train, rcond=None)
    return X_test[:, [0, 1, 3]] @ coef


@pytest.fixture(scope="module")
def world():
    X, y, days = synthetic(60, seed=1)
    oof = out_of_fold_predictions(X, y, days, least_squares)
    estimator = fit_loss_estimator(X, oof, np.abs(y - oof), days, NAMES)
    X_new, y_new, days_new = synthetic(40, seed=2)
    served = least_squares(X, y, X_new)
    realized = daily_mae(np.abs(y_new - served), days_new)
    estimated = estimate_daily(estimator, X_new, served, days_new)
    storm = pl.DataFrame({"day": days_new, "storm": X_new[:, 2]}).group_by("day").agg(pl.col("storm").mean())
    return {"X": X, "y": y, "days": days, "oof": oof, "estimator": estimator, "X_new": X_new, "served": served,
            "days_new": days_new, "daily": realized.join(estimated, on=["day", "rows"]).join(storm, on="day")}


def test_estimated_daily_mae_tracks_the_realized_one(world):
    daily = world["daily"]
    real, est = daily["mae"].to_numpy(), daily["estimated_mae"].to_numpy()
    assert daily.height == 40 and (daily["rows"] == HOURS).all()
    assert np.median(np.abs(est - real) / real) < 0.15
    assert np.corrcoef(est, real)[0, 1] > 0.9
    assert 0.9 < est.mean() / real.mean() < 1.1  # a mean model on the raw error: unbiased daily means


def test_stormy_days_get_larger_estimates(world):
    daily = world["daily"]
    stormy = daily.filter(pl.col("storm") > 0.5)["estimated_mae"].mean()
    calm = daily.filter(pl.col("storm") <= 0.5)["estimated_mae"].mean()
    assert stormy > 2 * calm
    top, bottom = daily.sort("storm")["estimated_mae"][-5:], daily.sort("storm")["estimated_mae"][:5]
    assert top.min() > bottom.max()


def test_interval_brackets_the_estimate_and_mostly_the_realized_mae(world):
    daily, estimator = world["daily"], world["estimator"]
    assert estimator.level == 0.8 and estimator.reference_days == 60
    assert estimator.low_ratio < 1 < estimator.high_ratio
    assert (daily["low"] < daily["estimated_mae"]).all() and (daily["estimated_mae"] < daily["high"]).all()
    covered = ((daily["mae"] >= daily["low"]) & (daily["mae"] <= daily["high"])).mean()
    assert 0.6 <= covered <= 1.0


def test_log1p_target_without_correction_runs_low(world):
    """Why the target is the raw error: a log target estimates a geometric mean, below the MAE."""
    w = world
    log_est = fit_loss_estimator(w["X"], w["oof"], np.abs(w["y"] - w["oof"]), w["days"], NAMES, objective="log1p")
    low = estimate_daily(log_est, w["X_new"], w["served"], w["days_new"])["estimated_mae"].mean()
    assert low < 0.9 * w["daily"]["estimated_mae"].mean()


def test_json_round_trip_gives_identical_estimates(world):
    w = world
    text = json.dumps(w["estimator"].to_dict())
    assert "model" in json.loads(text) and "tree" in json.loads(text)["model"].lower()
    again = LossEstimator.from_dict(json.loads(text))
    assert again == w["estimator"]
    before = estimate_daily(w["estimator"], w["X_new"], w["served"], w["days_new"])
    after = estimate_daily(again, w["X_new"], w["served"], w["days_new"])
    assert before.equals(after)
    assert np.array_equal(again.predict_rows(w["X_new"], w["served"], w["days_new"]),
                          w["estimator"].predict_rows(w["X_new"], w["served"], w["days_new"]))


def test_fitting_is_deterministic(world):
    w = world
    again = fit_loss_estimator(w["X"], w["oof"], np.abs(w["y"] - w["oof"]), w["days"], NAMES)
    assert again.model_str == w["estimator"].model_str and again == w["estimator"]


def test_out_of_fold_predictions_never_see_the_rows_own_day():
    days = np.repeat(np.arange(30), 24)
    X = days.reshape(-1, 1).astype(float)  # the only feature is the day itself
    y = days * 10.0

    def memorise(X_train, y_train, X_test):
        seen = dict(zip(X_train[:, 0], y_train))
        return np.array([seen.get(x, -1.0) for x in X_test[:, 0]])

    assert (memorise(X, y, X) == y).all()  # in sample it would recall every row exactly
    oof = out_of_fold_predictions(X, y, days, memorise, folds=5)
    assert oof.shape == y.shape and (oof == -1.0).all()


def test_day_folds_are_contiguous_blocks_of_whole_days():
    days = np.repeat(np.array(["2012-01-03", "2012-01-01", "2012-01-02", "2012-01-05", "2012-01-04",
                               "2012-01-06", "2012-01-07"]), 3)
    fold = day_folds(days, folds=3)
    by_day = {d: set(fold[days == d]) for d in np.unique(days)}
    assert all(len(f) == 1 for f in by_day.values())  # a day never straddles two folds
    ordered = [by_day[d].pop() for d in sorted(by_day)]
    assert ordered == sorted(ordered) and sorted(set(ordered)) == [0, 1, 2]  # contiguous, all used
    sizes = np.bincount(ordered)
    assert sizes.max() - sizes.min() <= 1
    with pytest.raises(ValueError, match="cannot make"):
        day_folds(days, folds=8)


def test_wrong_columns_are_refused(world):
    w = world
    with pytest.raises(ValueError, match="expects 4 columns"):
        w["estimator"].predict_rows(w["X_new"][:, :3], w["served"], w["days_new"])
    with pytest.raises(ValueError, match="pass days"):
        w["estimator"].predict_rows(w["X_new"], w["served"])
    with pytest.raises(ValueError, match="not among the feature names"):
        fit_loss_estimator(w["X"], w["oof"], np.abs(w["y"] - w["oof"]), w["days"], NAMES, inputs=["rain"])


def test_inputs_restrict_what_the_loss_model_sees(world):
    w = world
    blind = fit_loss_estimator(w["X"], w["oof"], np.abs(w["y"] - w["oof"]), w["days"], NAMES,
                               inputs=["hour_sin", "hour_cos"], day_context=False)
    assert blind.inputs == ("hour_sin", "hour_cos") and blind.feature_names == tuple(NAMES)
    assert blind.predict_rows(w["X_new"], w["served"]).shape == w["served"].shape  # no days needed
    est = estimate_daily(blind, w["X_new"], w["served"], w["days_new"])["estimated_mae"].to_numpy()
    real = w["daily"]["mae"].to_numpy()
    # Without the storm level it cannot tell stormy days apart, so it tracks far worse.
    assert np.corrcoef(est, real)[0, 1] < 0.5


def test_label_feedback_corrects_an_estimate_that_runs_low_and_ignores_one_outlier_day():
    feedback = LabelFeedback(max_days=5, min_days=3)
    realized = [12.0, 11.0, 13.0, 12.0, 60.0]  # the last labelled day a storm
    estimated = [10.0, 10.0, 10.0, 10.0, 10.0]
    scale, days = feedback.scale(realized, estimated)
    assert days == 5 and scale == pytest.approx(1.2)  # the median ratio: the storm does not move it


def test_label_feedback_waits_for_enough_labelled_days_and_uses_only_the_latest():
    feedback = LabelFeedback(max_days=3, min_days=3)
    assert feedback.scale([20.0, 20.0], [10.0, 10.0]) == (1.0, 2)
    assert feedback.scale([], []) == (1.0, 0)
    # Old days (ratio 3) fall out of the window; a NaN day in it is not counted.
    assert feedback.scale([30.0, 30.0, 11.0, 9.0, 10.0], [10.0] * 5) == (pytest.approx(1.0), 3)
    assert feedback.scale([30.0, 30.0, 11.0, float("nan"), 9.0], [10.0] * 5) == (1.0, 2)


def test_label_feedback_counts_only_the_serving_models_own_days():
    feedback = LabelFeedback(max_days=4, min_days=2)
    realized, estimated = [13.0, 12.0, 12.0, 12.0, 20.0, 15.0], [10.0] * 6
    # A champion promoted yesterday: its one day is too few, and the days of the model it replaced (which
    # erred more than estimated: why it was replaced) are not lent to it. No correction.
    assert feedback.scale(realized, estimated, [False] * 5 + [True]) == (1.0, 1)
    # With 2 days of its own, only its own count.
    assert feedback.scale(realized, estimated, [False] * 4 + [True] * 2) == (pytest.approx(1.75), 2)
    # Its own days beyond `max_days` fall out.
    assert feedback.scale(realized, estimated, [True] * 6) == (pytest.approx(1.35), 4)
