"""Label-free daily MAE (Direct Loss Estimation) against the realized daily MAE, on the real bike data.

Usage (from the project root):
    .venv/bin/python benchmarks/performance_estimate.py [--out benchmarks/results/performance_estimate.md]

Walk-forward: a cut-off every 30 days from 2011-04-01. At each, the served recipe (LightGBM on
log1p(cnt)) is fit on the 90 days before it and scores every day up to the next cut-off. The loss
estimator is fit on the window's out-of-fold errors only (5 contiguous day blocks) and estimates the
MAE of each following day from features and served predictions; nothing after the cut-off but
features and predictions is used. Then the estimate is compared with the realized daily MAE.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import lightgbm
import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.features import build_features, feature_matrix, feature_names  # noqa: E402
from ml.models import make_model  # noqa: E402
from ml.models.trees import DEFAULTS as SERVED  # noqa: E402
from ml.performance_estimate import (  # noqa: E402
    daily_mae,
    estimate_daily,
    fit_loss_estimator,
    out_of_fold_predictions,
)
from ml.usecases import BIKE_RENTALS as SPEC  # noqa: E402

DATA = ROOT / "data" / "bike_sharing_hourly.csv"
WINDOW_DAYS = 90
STEP_DAYS = 30
FIRST_CUTOFF, LAST_DAY = date(2011, 4, 1), date(2012, 12, 31)
FOLDS = 5
TARGET = 0.25  # median |est - real| / real over the 2012 days


ALL = tuple(feature_names(SPEC))
# What the loss model sees besides the prediction: features that say *when* a row is (month,
# season, and temperature, which within 90 days mostly tracks the season) are left out, because
# inside one window they identify the out-of-fold day block rather than what makes an hour hard.
TIME_PROXIES = ("mnth", "season", "temp", "atemp")
NO_TIME = tuple(n for n in ALL if n.split("_")[0] not in TIME_PROXIES)
NO_CALENDAR = tuple(n for n in ALL if n.split("_")[0] not in ("mnth", "season"))


@dataclass(frozen=True)
class Variant:
    name: str
    inputs: tuple[str, ...] = NO_TIME
    objective: str = "tweedie"
    correct_scale: bool = False
    day_context: bool = True


VARIANTS = (
    Variant("default: tweedie on abs error; prediction, day mean prediction, features but month/season/temperature"),
    Variant("default without the day mean prediction", day_context=False),
    Variant("default with all features", inputs=ALL),
    Variant("default with temperature kept (month/season still out)", inputs=NO_CALENDAR),
    Variant("prediction and day mean prediction only", inputs=()),
    Variant("default + out-of-fold median scale", correct_scale=True),
    Variant("default with l2 on abs error", objective="l2"),
    Variant("default with log1p(abs error) + out-of-fold median scale", objective="log1p", correct_scale=True),
)
PRIMARY = VARIANTS[0]


def served_fit_predict(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray) -> np.ndarray:
    """The served model's recipe itself (`ml.models.trees` with its defaults), counts out, never negative."""
    model = make_model("trees", {}).fit(X_train, y_train, X_train[-24:], y_train[-24:])
    return np.maximum(model.predict(X_test), 0.0)


def cutoffs() -> list[date]:
    out, c = [], FIRST_CUTOFF
    while c <= LAST_DAY:
        out.append(c)
        c += timedelta(days=STEP_DAYS)
    return out


def summarize(frame: pl.DataFrame, est: str = "estimated_mae") -> dict[str, float]:
    real, e = frame["mae"].to_numpy(), frame[est].to_numpy()
    rel = np.abs(e - real) / real
    out = {
        "days": frame.height,
        "median_rel_err": float(np.median(rel)),
        "p90_rel_err": float(np.quantile(rel, 0.9)),
        "corr": float(np.corrcoef(e, real)[0, 1]),
        "median_est_over_real": float(np.median(e / real)),
        "mean_est_over_mean_real": float(e.mean() / real.mean()),
    }
    if "low" in frame.columns and est == "estimated_mae":
        out["coverage"] = float(np.mean((real >= frame["low"].to_numpy()) & (real <= frame["high"].to_numpy())))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "performance_estimate.md"))
    args = parser.parse_args()

    started = time.perf_counter()
    load_avg = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "n/a"
    raw = pl.read_csv(DATA, try_parse_dates=True)
    features = build_features(SPEC, raw)
    X, y = feature_matrix(SPEC, features), features[SPEC.target].to_numpy().astype(np.float64)
    days = features[SPEC.event_date].to_numpy()  # datetime64[D]

    results: dict[str, list[pl.DataFrame]] = {v.name: [] for v in VARIANTS}
    per_cutoff = []
    cuts = cutoffs()
    for i, cut in enumerate(cuts):
        t0 = time.perf_counter()
        nxt = cuts[i + 1] if i + 1 < len(cuts) else LAST_DAY + timedelta(days=1)
        first = np.datetime64(cut - timedelta(days=WINDOW_DAYS))
        ref = (days >= first) & (days < np.datetime64(cut))
        new = (days >= np.datetime64(cut)) & (days < np.datetime64(nxt))
        if not new.any():
            continue
        oof = out_of_fold_predictions(X[ref], y[ref], days[ref], served_fit_predict, folds=FOLDS)
        oof_err = np.abs(y[ref] - oof)
        served = served_fit_predict(X[ref], y[ref], X[new])
        realized = daily_mae(np.abs(y[new] - served), days[new])
        reference_mae = float(oof_err.mean())
        for v in VARIANTS:
            est = fit_loss_estimator(X[ref], oof, oof_err, days[ref], ALL, inputs=v.inputs, objective=v.objective,
                                     folds=FOLDS, correct_scale=v.correct_scale, day_context=v.day_context)
            daily = estimate_daily(est, X[new], served, days[new]).drop("rows")
            daily = realized.join(daily, on="day").with_columns(
                pl.lit(cut).alias("cutoff"), pl.lit(reference_mae).alias("reference_oof_mae"))
            results[v.name].append(daily)
            if v is PRIMARY:
                s = summarize(daily)
                per_cutoff.append({"cutoff": cut, "reference_oof_mae": reference_mae,
                                   "low_ratio": est.low_ratio, "high_ratio": est.high_ratio, **s,
                                   "real_mae": float(daily["mae"].mean()),
                                   "est_mae": float(daily["estimated_mae"].mean())})
                print(f"cut-off {cut}  ref OOF MAE {reference_mae:6.1f}  days {s['days']:2d}  "
                      f"real {per_cutoff[-1]['real_mae']:6.1f}  est {per_cutoff[-1]['est_mae']:6.1f}  "
                      f"med rel err {s['median_rel_err']:.3f}  corr {s['corr']:+.2f}  "
                      f"coverage {s['coverage']:.2f}  {time.perf_counter() - t0:5.1f} s", flush=True)

    frames = {name: pl.concat(parts) for name, parts in results.items()}
    in_2012 = pl.col("day") >= date(2012, 1, 1)
    primary = frames[PRIMARY.name]
    s2012, sall = summarize(primary.filter(in_2012)), summarize(primary)
    base2012 = summarize(primary.filter(in_2012), est="reference_oof_mae")
    baseall = summarize(primary, est="reference_oof_mae")
    elapsed = time.perf_counter() - started
    met = s2012["median_rel_err"] <= TARGET
    print(f"2012: median rel err {s2012['median_rel_err']:.3f} (target <= {TARGET}: {'yes' if met else 'NO'}), "
          f"corr {s2012['corr']:.3f}, coverage {s2012['coverage']:.3f}; all days: median rel err "
          f"{sall['median_rel_err']:.3f}, corr {sall['corr']:.3f}, coverage {sall['coverage']:.3f}; {elapsed:.0f} s")

    lines = [
        "# Label-free performance estimate (Direct Loss Estimation)",
        "",
        f"Written by `.venv/bin/python benchmarks/performance_estimate.py` in {elapsed:.0f} s. Machine: "
        f"{_cpus()} CPUs, {platform.machine()}, load average {load_avg} at start. lightgbm {lightgbm.__version__}.",
        "",
        f"Walk-forward on `data/bike_sharing_hourly.csv`: {len(per_cutoff)} cut-offs every {STEP_DAYS} days from "
        f"{FIRST_CUTOFF}; at each, the served recipe (LightGBM on log1p(cnt), {SERVED['n_estimators']} trees, "
        f"lr {SERVED['learning_rate']}, {SERVED['num_leaves']} leaves) "
        f"is fit on the {WINDOW_DAYS} days before the cut-off and scores each day up to the next one. The loss "
        f"estimator (`ml.performance_estimate`) is fit on the window's out-of-fold errors ({FOLDS} contiguous "
        "day blocks) and estimates each following day's MAE from features and served predictions only; the "
        "realized daily MAE (labels) is used for scoring this table, never for the estimate. Relative error = "
        "|estimated - realized| / realized daily MAE. Interval: 80% (10th-90th percentile of realized / estimated "
        "daily MAE over the reference days, out of fold).",
        "",
        f"## Result (default estimator: {PRIMARY.name})",
        "",
        "| days | n | median rel err | p90 rel err | correlation | median est / real | 80% interval coverage |",
        "|---|---|---|---|---|---|---|",
        _row("2012", s2012),
        _row("all (2011-04-01..2012-12-31)", sall),
        "",
        f"Target: median relative error <= {TARGET:.0%} over the 2012 days: **{'met' if met else 'missed'}** "
        f"({s2012['median_rel_err']:.1%}).",
        "",
        "Baseline without DLE: assume every day's MAE equals the reference window's out-of-fold MAE.",
        "",
        "| days | n | median rel err | p90 rel err | correlation | median est / real |",
        "|---|---|---|---|---|---|",
        _row("2012", base2012, coverage=False),
        _row("all", baseall, coverage=False),
        "",
        "## Estimator variants (same served predictions and out-of-fold errors)",
        "",
        "| variant | 2011 median rel err | 2012 median rel err | 2012 corr | 2012 coverage | 2012 median est / real "
        "| 2012 mean est / mean real | all median rel err | all corr | all coverage |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, frame in frames.items():
        a, b, d = summarize(frame.filter(in_2012)), summarize(frame), summarize(frame.filter(~in_2012))
        lines.append(f"| {name} | {d['median_rel_err']:.3f} | {a['median_rel_err']:.3f} | {a['corr']:.3f} | "
                     f"{a['coverage']:.2f} | "
                     f"{a['median_est_over_real']:.2f} | {a['mean_est_over_mean_real']:.2f} | "
                     f"{b['median_rel_err']:.3f} | {b['corr']:.3f} | {b['coverage']:.2f} |")
    lines += [
        "",
        "How the default was chosen, with the 31-leaf served recipe of 2026-12-03 (2011 days as development, "
        "2012 days as the test): leaving out month, season and temperature came from a 2011 failure (cut-off "
        "2011-09-28, estimate twice the realized MAE: in a 90-day window those features mark the out-of-fold "
        "block, and October inherited the error of a rainy September block). Tweedie beat l2 on 2011 then, and "
        "the day's mean prediction was not backed by 2011 alone (it raised the correlation in 2012 and over all "
        "days, while 2011's median error was lower without it). The choice was not revisited when the served "
        "trees went to 15 leaves (2026-12-04): this run's 2011 column says how the variants compare now. The "
        "2012 numbers have been visible while iterating, so they are not a pristine hold-out. All variants run "
        "low on the mean (mean est / mean real below 1): the worst days (Hurricane Sandy, the holidays, months "
        "outside the window's range) are errors no loss model fit on the window has seen.",
        "",
        "## Per cut-off (default estimator)",
        "",
        "| cut-off | days | ref OOF MAE | realized MAE | estimated MAE | median rel err | corr | interval ratios | coverage |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in per_cutoff:
        lines.append(f"| {r['cutoff']} | {r['days']} | {r['reference_oof_mae']:.1f} | {r['real_mae']:.1f} | "
                     f"{r['est_mae']:.1f} | {r['median_rel_err']:.3f} | {r['corr']:.2f} | "
                     f"[{r['low_ratio']:.2f}, {r['high_ratio']:.2f}] | {r['coverage']:.2f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def _row(label: str, s: dict[str, float], coverage: bool = True) -> str:
    row = (f"| {label} | {s['days']} | {s['median_rel_err']:.3f} | {s['p90_rel_err']:.3f} | {s['corr']:.3f} | "
           f"{s['median_est_over_real']:.2f} |")
    return row + (f" {s['coverage']:.2f} |" if coverage else "")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    main()
