"""One candidate = a recipe judged out of sample, then refit on the whole window for serving."""

from datetime import date

import numpy as np
import polars as pl
import pytest

from ml.features import build_features
from ml.onnx_scoring import OnnxModel
from ml.performance_estimate import LossEstimator
from ml.training import recency_weights, train_candidate, xy
from ml.training_set import Window, split_by_time
from ml.usecases.bike_rentals import SPEC

DATA = "data/bike_sharing_hourly.csv"


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    raw = pl.read_csv(DATA, try_parse_dates=True).filter(pl.col("dteday") < date(2011, 3, 2))
    return split_by_time(SPEC, build_features(SPEC, raw), Window(date(2011, 3, 2), 60, 7, 7))


@pytest.fixture(scope="module")
def candidate(frame):
    return train_candidate(SPEC, frame, "trees", {"n_estimators": 60}, loss_estimate_folds=3)


def test_the_gate_sees_a_fit_blind_to_the_holdout_and_serving_gets_the_refit(candidate, frame):
    X_hold, y_hold = xy(SPEC, frame, "holdout")
    judged, served = OnnxModel(candidate.judged_onnx_bytes), OnnxModel(candidate.onnx_bytes)
    judged_mae = np.mean(np.abs(judged.predict(X_hold) - y_hold))
    served_mae = np.mean(np.abs(served.predict(X_hold) - y_hold))
    assert candidate.metrics["holdout"]["mae"] == pytest.approx(judged_mae, rel=1e-6)
    assert served_mae < judged_mae  # the served fit learned the hold-out days
    assert candidate.served_metrics["n"] == frame.height
    assert candidate.parity.passed and candidate.parity.max_rel < 1e-4  # the served artifact's parity


def test_a_loss_estimator_comes_with_every_candidate(candidate, frame):
    estimator = LossEstimator.from_dict(candidate.loss_estimator)
    assert not set(estimator.inputs) & {"temp", "atemp", "mnth", "mnth_sin", "season"}  # spec's excludes
    X, _ = xy(SPEC, frame)
    rows = estimator.predict_rows(X, OnnxModel(candidate.onnx_bytes).predict(X), frame["dteday"].to_numpy())
    assert rows.shape == (frame.height,) and (rows > 0).all()


def test_recency_weights_halve_every_half_life_and_are_off_by_default(frame):
    weights = recency_weights(frame, "dteday", half_life_days=14)
    newest, two_weeks = frame["dteday"].max(), frame["dteday"].max() - pl.duration(days=14)
    assert weights[(frame["dteday"] == newest).to_numpy()][0] == 1.0
    assert weights[(frame["dteday"] == frame.select(two_weeks).item()).to_numpy()][0] == pytest.approx(0.5)
    assert recency_weights(frame, "dteday", 0) is None


def test_recency_weighting_is_refused_for_a_family_without_sample_weights(frame):
    with pytest.raises(ValueError, match="recency weighting is supported by the trees family, not 'mlp'"):
        train_candidate(SPEC, frame, "mlp", {"epochs": 1}, recency_half_life_days=7)
