"""Label-free performance estimate: Direct Loss Estimation (as in NannyML's DLE).

Labels land days late, so the monitor estimates today's MAE before they do. A second, small model
learns each row's absolute error from its features and the served model's prediction; the mean of
its estimates over a day is the estimated daily MAE. It learns from the reference window's
out-of-fold errors (the served recipe refit K times, each fit blind to a block of days), because
in-sample errors of the served model would be far smaller than the ones it makes on unseen days.

What DLE cannot see: a change in the relation between features and target (concept drift, e.g. a
trend in demand) that leaves features and predictions looking normal. It estimates the error the
model makes on rows like these; drift checks and the late labels cover the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

from ml.heavy import heavy_import

if TYPE_CHECKING:  # imported where a model is fit or parsed: the definitions load without it
    import lightgbm

FitPredict = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
PREDICTION_FEATURE = "__prediction__"
DAY_PREDICTION_FEATURE = "__day_mean_prediction__"
OBJECTIVES = ("l2", "log1p", "tweedie")

# Small on purpose: ~2k reference rows per window; the prediction carries most of the signal.
ESTIMATOR_PARAMS: dict[str, Any] = {
    "n_estimators": 100,
    "learning_rate": 0.05,
    "num_leaves": 8,
    "min_child_samples": 40,
    "reg_lambda": 1.0,
    "random_state": 0,
    "deterministic": True,
    "force_row_wise": True,
    "n_jobs": 1,
    "verbose": -1,
}


def day_folds(days: ArrayLike, folds: int = 5) -> np.ndarray:
    """Fold id per row: the sorted distinct days cut into `folds` contiguous blocks.

    Contiguous blocks rather than random day groups: demand and weather run in multi-day spells,
    so a held-out day whose neighbours were in the training set would be predicted too well, and
    the served model is always scored on days it has no neighbours of. Whole days, never single
    hours, because the hours of one day share their weather and their error.
    """
    unique, inverse = np.unique(np.asarray(days), return_inverse=True)
    if unique.size < folds:
        raise ValueError(f"{unique.size} distinct days cannot make {folds} folds")
    block = np.arange(unique.size) * folds // unique.size  # sizes differ by at most one day
    return block[inverse]


def out_of_fold_predictions(
    X: np.ndarray, y: ArrayLike, days: ArrayLike, fit_predict: FitPredict, folds: int = 5
) -> np.ndarray:
    """Predictions for every row from a fit that never saw that row's block of days."""
    y = np.asarray(y, dtype=np.float64)
    fold = day_folds(days, folds)
    oof = np.full(y.shape, np.nan)
    for k in range(folds):
        test = fold == k
        oof[test] = np.asarray(fit_predict(X[~test], y[~test], X[test]), dtype=np.float64).reshape(-1)
    return oof


def _per_day(values: ArrayLike, days: ArrayLike) -> pl.DataFrame:
    """DataFrame[day, rows, mean] sorted by day, summed in row order by numpy: the same inputs give
    the same bits on every run (a parallel group-by may add in another order)."""
    unique, day = np.unique(np.asarray(days), return_inverse=True)
    rows = np.bincount(day)
    mean = np.bincount(day, weights=np.asarray(values, dtype=np.float64)) / rows
    return pl.DataFrame({"day": pl.Series(unique), "rows": pl.Series(rows, dtype=pl.UInt32), "mean": mean})


def daily_mae(abs_error: ArrayLike, days: ArrayLike) -> pl.DataFrame:
    """Realized MAE per day: DataFrame[day, rows, mae], sorted by day."""
    return _per_day(abs_error, days).rename({"mean": "mae"})


@dataclass(frozen=True)
class LossEstimator:
    """A fitted loss model plus its interval calibration; rebuilt from text, never unpickled.

    `feature_names` are the columns of the X it is given (checked), `inputs` the subset it uses;
    with `day_context`, the day's mean prediction is one more input (a busy day's hours all err
    more, and its hour-by-hour prediction alone does not say the day is busy);
    `scale` multiplies every row estimate (1.0 unless a correction was learned out of fold);
    `low_ratio`/`high_ratio` are quantiles of realized / estimated daily MAE on the reference days,
    estimated out of fold, so [est * low_ratio, est * high_ratio] is a `level` interval.
    """

    model_str: str
    feature_names: tuple[str, ...]
    inputs: tuple[str, ...]
    day_context: bool
    objective: str
    scale: float
    low_ratio: float
    high_ratio: float
    level: float
    reference_days: int
    _booster: lightgbm.Booster = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Always predict through a Booster parsed from the text, so a fresh and a reloaded
        # estimator take the same code path and give bit-identical estimates.
        lightgbm = heavy_import("lightgbm")

        object.__setattr__(self, "_booster", lightgbm.Booster(model_str=self.model_str))
        unknown = set(self.inputs) - set(self.feature_names)
        if unknown:
            raise ValueError(f"inputs {sorted(unknown)} are not among the feature names")

    def predict_rows(self, X: np.ndarray, prediction: ArrayLike, days: ArrayLike | None = None) -> np.ndarray:
        """Estimated absolute error of each row; X has all `feature_names` columns, in order.

        `days` is needed with `day_context`: the day mean is over the rows given, so pass whole days.
        """
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"X has shape {X.shape}, the estimator expects {len(self.feature_names)} columns")
        if self.day_context and days is None:
            raise ValueError("this estimator uses the day's mean prediction: pass days")
        columns = [self.feature_names.index(n) for n in self.inputs]
        raw = self._booster.predict(_inputs(X[:, columns], prediction, days if self.day_context else None))
        est = np.expm1(raw) if self.objective == "log1p" else raw
        return np.maximum(est, 0.0) * self.scale

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "direct_loss_estimator",
            "version": 1,
            "model": self.model_str,
            "feature_names": list(self.feature_names),
            "inputs": list(self.inputs),
            "day_context": self.day_context,
            "objective": self.objective,
            "scale": self.scale,
            "interval": {"level": self.level, "low_ratio": self.low_ratio, "high_ratio": self.high_ratio},
            "reference_days": self.reference_days,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LossEstimator:
        if d.get("kind") != "direct_loss_estimator" or d.get("version") != 1:
            raise ValueError(f"not a version-1 direct loss estimator: kind={d.get('kind')!r} version={d.get('version')!r}")
        interval = d["interval"]
        return cls(
            model_str=d["model"],
            feature_names=tuple(d["feature_names"]),
            inputs=tuple(d["inputs"]),
            day_context=bool(d["day_context"]),
            objective=d["objective"],
            scale=float(d["scale"]),
            low_ratio=float(interval["low_ratio"]),
            high_ratio=float(interval["high_ratio"]),
            level=float(interval["level"]),
            reference_days=int(d["reference_days"]),
        )


def _inputs(X: np.ndarray, prediction: ArrayLike, days: ArrayLike | None = None) -> np.ndarray:
    """Loss-model inputs: the chosen features, the prediction, and (given days) the day's mean prediction."""
    X = np.asarray(X, dtype=np.float64)
    p = np.asarray(prediction, dtype=np.float64).reshape(-1)
    if X.ndim != 2 or X.shape[0] != p.size:
        raise ValueError(f"X {X.shape} and prediction {p.shape} do not match row for row")
    columns = [X, p.reshape(-1, 1)]
    if days is not None:
        _, day = np.unique(np.asarray(days), return_inverse=True)
        if day.size != p.size:
            raise ValueError(f"{day.size} days for {p.size} rows")
        columns.append((np.bincount(day, weights=p) / np.bincount(day))[day].reshape(-1, 1))
    return np.hstack(columns)


def _fit_booster(inputs: np.ndarray, abs_error: np.ndarray, objective: str, names: list[str]) -> str:
    lightgbm = heavy_import("lightgbm")

    params = dict(ESTIMATOR_PARAMS)
    if objective == "log1p":
        target = np.log1p(abs_error)
    else:
        target = abs_error
        if objective == "tweedie":
            params |= {"objective": "tweedie", "tweedie_variance_power": 1.5}
    model = lightgbm.LGBMRegressor(**params).fit(inputs, target, feature_name=names)
    return model.booster_.model_to_string()


def fit_loss_estimator(
    X: np.ndarray,
    prediction: ArrayLike,
    abs_error: ArrayLike,
    days: ArrayLike,
    feature_names: Sequence[str] | None = None,
    inputs: Sequence[str] | None = None,
    day_context: bool = True,
    objective: str = "tweedie",
    folds: int = 5,
    level: float = 0.8,
    correct_scale: bool = False,
) -> LossEstimator:
    """Fit the loss model on reference rows (out-of-fold predictions and their absolute errors).

    `inputs` (default: every feature) picks the columns the loss model sees besides the prediction.
    Leave out features that only say *when* a row is (month, season, a slow temperature cycle):
    within one window they identify the day block, so the model learns which block happened to be
    hard, and a new month out of the window's range inherits the error of the nearest block.
    `day_context` adds the day's mean prediction as an input (see `LossEstimator`).

    The target is the raw absolute error, because the daily MEAN is what must be right. Objective
    `tweedie` (default; variance power 1.5) is a mean model with a log link: effects multiply, as
    errors do (error scales with demand), and it won the 2011 development days of the bike benchmark.
    `l2` also estimates the mean (a leaf is the mean error of its rows), additively. `log1p` fits a
    geometric mean, which runs low on right-skewed errors, unless `correct_scale`.
    The interval (and, with `correct_scale`, a multiplicative correction: the median realized /
    estimated daily ratio) comes from refitting the loss model over the same day folds and comparing
    each reference day's estimate, made blind to that day, with its realized MAE.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r} not in {OBJECTIVES}")
    X = np.asarray(X)
    prediction = np.asarray(prediction, dtype=np.float64)
    abs_error = np.asarray(abs_error, dtype=np.float64)
    names = tuple(feature_names) if feature_names is not None else tuple(f"f{i}" for i in range(X.shape[1]))
    if X.ndim != 2 or len(names) != X.shape[1]:
        raise ValueError(f"{len(names)} feature names for X of shape {X.shape}")
    used = tuple(inputs) if inputs is not None else names
    unknown = set(used) - set(names)
    if unknown:
        raise ValueError(f"inputs {sorted(unknown)} are not among the feature names")

    days = np.asarray(days)
    columns = [names.index(n) for n in used]
    booster_names = [*used, PREDICTION_FEATURE, *([DAY_PREDICTION_FEATURE] if day_context else [])]

    def fit(rows: np.ndarray, scale: float = 1.0, low: float = 1.0, high: float = 1.0, n_days: int = 0):
        rows_in = _inputs(X[rows][:, columns], prediction[rows], days[rows] if day_context else None)
        model = _fit_booster(rows_in, abs_error[rows], objective, booster_names)
        return LossEstimator(model, names, used, day_context, objective, scale, low, high, level, n_days)

    fold = day_folds(days, folds)
    oof_est = np.empty_like(abs_error)
    for k in range(folds):
        test = fold == k
        oof_est[test] = fit(~test).predict_rows(X[test], prediction[test], days[test])
    ratios = _daily_ratios(abs_error, oof_est, days)
    scale = float(np.median(ratios)) if correct_scale else 1.0
    tail = (1.0 - level) / 2
    low, high = np.quantile(ratios / scale, [tail, 1.0 - tail])
    return fit(np.ones(abs_error.size, dtype=bool), scale, float(low), float(high), int(ratios.size))


def _daily_ratios(abs_error: np.ndarray, estimate: np.ndarray, days: np.ndarray) -> np.ndarray:
    _, day = np.unique(days, return_inverse=True)
    real = np.bincount(day, weights=abs_error)
    est = np.bincount(day, weights=estimate)
    ok = est > 0
    return real[ok] / est[ok]  # row counts cancel: ratio of sums = ratio of means


def estimate_daily(estimator: LossEstimator, X: np.ndarray, prediction: ArrayLike, days: ArrayLike) -> pl.DataFrame:
    """Estimated MAE per day with its interval: DataFrame[day, rows, estimated_mae, low, high]."""
    est = estimator.predict_rows(X, prediction, days)
    return (
        _per_day(est, days).rename({"mean": "estimated_mae"})
        .with_columns(
            (pl.col("estimated_mae") * estimator.low_ratio).alias("low"),
            (pl.col("estimated_mae") * estimator.high_ratio).alias("high"),
        )
    )


@dataclass(frozen=True)
class LabelFeedback:
    """How the serving model's latest labelled days correct today's estimate.

    DLE cannot see concept drift (demand growing under unchanged features), so its error drifts in
    one direction while a model ages: in the 2011-2012 bike replay the estimate ran at 0.85x the
    realized MAE. Once labels land, the median realized / estimated ratio over the serving model's
    last `max_days` labelled days measures that drift; today's estimate is multiplied by it. The
    median, not the mean, so one storm day does not move it. Until the serving model has `min_days`
    labelled days of its own, the estimate is left uncorrected.

    Only the serving model's own days: the days of the model it replaced are a biased sample. A
    retrain follows days on which the old model erred more than its estimate said (that is what
    triggers it), so their ratio runs high, and lent to the new champion it made its first days'
    estimates run high (bike replay, first 3 days of each model: +31% median signed error in 2012, +1%
    uncorrected). Own days only, from 2, was no worse than lending on the development days of both
    replays, in median error and correlation (benchmarks/label_feedback.py).
    """

    max_days: int = 28
    min_days: int = 2

    def scale(self, realized: ArrayLike, estimated: ArrayLike, own: ArrayLike | None = None) -> tuple[float, int]:
        """(scale, days used) from labelled days' realized and uncorrected estimated MAEs, oldest first;
        `own` marks the days the serving model served (default: all of them)."""
        real = np.asarray(realized, dtype=np.float64)
        est = np.asarray(estimated, dtype=np.float64)
        ok = np.isfinite(real) & np.isfinite(est) & (est > 0)
        days = np.arange(real.size)
        if own is not None:
            days = days[np.asarray(own, dtype=bool)]
        days = days[-self.max_days:]
        days = days[ok[days]]
        if days.size < self.min_days:
            return 1.0, int(days.size)
        return float(np.median(real[days] / est[days])), int(days.size)
