"""Replay the shipped history day by day in simulated time, with the sensors acting as each day lands.

    .venv/bin/python -m orchestration.replay [USE_CASE] [--first DAY] [--last DAY] [--label-delay 3]

Bootstraps a champion on the first 90 days, then for each later day runs the daily job (ingest,
features, champion scoring with challenger shadow, drift, label-free estimate, performance), ticks
the labels sensor, the retrain sensor (which launches the retrain job: training set -> candidate ->
gate -> promotion) and the alert sensor. With `--label-delay N` each day's file lands without its
labels, which land N days later. Prints one line per day and writes a summary — the loop beside the
seasonal-naive forecast, a static model and the same recipe refit on a calendar (every 30 days,
every day), overall, for the last calendar year and by month, retrains and why, the label-free estimate against the
realized MAE — to benchmarks/results/replay[_<use case>][_delayN].md, .json and .png (the bike
rentals, the default use case, without the name).

Two variables shorten a run without editing its command (the README's commands are run this way by
tests/integration/test_readme_commands.py): `REPLAY_LAST_DAY` is the default of `--last`, and
`REPLAY_RESULTS_DIR` the folder of the summary files (default benchmarks/results).
"""

import argparse
import json
import os
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from assets.monitoring import scored_day
from ml.baselines import baseline_predictions
from ml.contract import split_rows
from ml.monitoring import PREDICTION
from ml.spec import UseCaseSpec
from ml.usecases import USE_CASES, replay_file
from orchestration.host import describe
from orchestration.simulation import Simulation
from resources.storage import LocalStorage

ROOT = Path(__file__).resolve().parents[1]
WINDOW_DAYS = 90
CALENDAR = {"static": 10**6, "every_30_days": 30, "daily": 1}


def days_between(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def loop_predictions(spec: UseCaseSpec, storage: LocalStorage, days: list[str]) -> pl.DataFrame:
    frames = [scored_day(spec, storage, d).select(*spec.key, spec.target, PREDICTION, "model_version")
              for d in days if storage.exists(f"{spec.name}/predictions/{d}.parquet")]
    return pl.concat(frames)


def mae(spec: UseCaseSpec, frame: pl.DataFrame, columns: list[str], by: pl.Expr | None = None) -> pl.DataFrame:
    """MAE per column over the rows where every column has a value (the same hours for every policy)."""
    rows = frame.drop_nans(columns).drop_nulls([*columns, spec.target])
    aggs = [pl.len().alias("hours"), *[(pl.col(c) - pl.col(spec.target)).abs().mean().round(2).alias(c)
                                      for c in columns]]
    return rows.group_by(by).agg(aggs).sort(by.meta.output_name()) if by is not None else rows.select(aggs)


def estimate_error(estimated: np.ndarray, realized: np.ndarray) -> dict:
    """Median |estimated - realized| / realized and the correlation, of daily MAEs."""
    return {"median_abs_rel_error": round(float(np.median(np.abs(estimated - realized) / realized)), 3),
            "correlation": round(float(np.corrcoef(estimated, realized)[0, 1]), 3)}


def estimate_accuracy(spec: UseCaseSpec, storage: LocalStorage, days: list[str]) -> dict:
    """Label-free estimate against the realized daily MAE: median |est - real| / real, correlation, coverage;
    and the same for the DLE estimate before the label feedback corrected it."""
    rows = []
    for d in days:
        perf_key = f"{spec.name}/performance/{d}.json"
        if storage.exists(perf_key):
            drift = storage.read_json(f"{spec.name}/drift/{d}.json")
            rows.append((drift["estimated_mae"], drift["estimated_low"], drift["estimated_high"],
                         drift["estimated_mae_dle"], storage.read_json(perf_key)["mae"]))
    if not rows:
        return {"days": 0}
    est, low, high, dle, real = np.array(rows).T
    return {"days": len(rows), **estimate_error(est, real),
            "interval_coverage": round(float(np.mean((real >= low) & (real <= high))), 3),
            "without_label_feedback": estimate_error(dle, real)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("use_case", nargs="?", default="rentals", choices=sorted(USE_CASES))
    parser.add_argument("--first", default="", help="first day (default: the use case's first partition)")
    parser.add_argument("--last", default=os.getenv("REPLAY_LAST_DAY", ""),
                        help="last day (default: REPLAY_LAST_DAY, else the use case's last partition)")
    parser.add_argument("--label-delay", type=int, default=0, help="days between a day's file and its labels")
    parser.add_argument("--root", default="", help="lake, registry and landing folder (default var/replay_<...>)")
    parser.add_argument("--out", default="", help="summary path without suffix (default "
                        "$REPLAY_RESULTS_DIR/replay..., REPLAY_RESULTS_DIR defaulting to benchmarks/results)")
    parser.add_argument("--skip-baselines", action="store_true",
                        help="the loop only (faster); its MAE then counts every hour it scored, not only the "
                             "hours every policy scored, so it differs slightly from a full run's")
    args = parser.parse_args()
    spec = USE_CASES[args.use_case]
    suffix = ("" if spec.name == "rentals" else f"_{spec.name}") + (f"_delay{args.label_delay}" if args.label_delay else "")
    out = Path(args.out or Path(os.getenv("REPLAY_RESULTS_DIR", ROOT / "benchmarks/results")) / f"replay{suffix}")
    first = date.fromisoformat(args.first) if args.first else spec.partition_start
    last = date.fromisoformat(args.last) if args.last else spec.partition_end
    cutoff = first + timedelta(days=WINDOW_DAYS)
    if last < cutoff + timedelta(days=args.label_delay):
        parser.error(f"--last {last} leaves no served day with labels: the first is {cutoff}, its labels land "
                     f"{args.label_delay} day(s) later; end on {cutoff + timedelta(days=args.label_delay)} or after")
    replay = Simulation.fresh(Path(args.root or ROOT / f"var/replay{suffix}"), spec=spec,
                              label_delay_days=args.label_delay)

    started = time.perf_counter()
    replay.bootstrap(first.isoformat(), cutoff.isoformat())
    served_days = days_between(cutoff, last)
    failed = replay.live(served_days)
    graph_seconds = time.perf_counter() - started
    loop = loop_predictions(spec, replay.storage, served_days).rename({PREDICTION: "loop"})

    policies, baseline_seconds = ["loop"], 0.0
    if not args.skip_baselines:
        started = time.perf_counter()
        validated = split_rows(spec, (ROOT / replay_file(spec)).read_bytes(), "history").validated
        base = baseline_predictions(spec, validated, cutoff, last, "trees", {}, WINDOW_DAYS, CALENDAR)
        baseline_seconds = time.perf_counter() - started
        loop = loop.join(base.drop(spec.target), on=list(spec.key), how="left")
        policies += ["naive", *CALENDAR]
    year = last.year
    year_days = [d for d in served_days if d >= f"{year}-01-01"]
    write_summary(spec, out, replay, loop, policies, failed, graph_seconds, baseline_seconds, served_days, year,
                  estimate_accuracy(spec, replay.storage, year_days), estimate_accuracy(spec, replay.storage, served_days),
                  args.label_delay)


def render_png(monthly: pl.DataFrame, policies: list[str], retrains: list[dict], path: Path, unit: str) -> None:
    """Monthly MAE per policy, with the loop's retrains marked (filled: promoted; hollow: refused)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    months = [date.fromisoformat(m + "-15") for m in monthly["month"]]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for p in policies:
        ax.plot(months, monthly[p], marker="o", markersize=3, linewidth=2.5 if p == "loop" else 1.2, label=p)
    top = float(monthly.select(policies).max().max_horizontal()[0])
    for r in retrains:
        day = date.fromisoformat(r["day"])
        ax.scatter([day], [top * 1.04], marker="v", s=40, color="black",
                   facecolors="black" if r["promoted"] else "none")
    ax.set_ylabel(unit)
    ax.set_title("Monthly MAE per policy; triangles: the loop's retrains (filled promoted, hollow refused)")
    ax.legend(ncol=len(policies), fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_summary(spec: UseCaseSpec, out: Path, replay: Simulation, frame: pl.DataFrame, policies: list[str],
                  failed: list[str], graph_seconds: float, baseline_seconds: float, served_days: list[str], year: int,
                  estimate_year: dict, estimate_all: dict, label_delay: int) -> None:
    month = pl.col(spec.event_date).dt.strftime("%Y-%m").alias("month")
    monthly = mae(spec, frame, policies, month)
    overall = mae(spec, frame, policies).drop("hours").to_dicts()[0]
    mae_year = mae(spec, frame.filter(pl.col(spec.event_date) >= date(year, 1, 1)), policies).drop("hours").to_dicts()[0]
    launched = replay.retrains[1:]
    promoted = sum(r["promoted"] for r in launched)
    n_days = len(served_days)
    unit = f"MAE ({spec.business_figure.unit} per row)"
    machine = describe()
    command = " ".join(["`.venv/bin/python -m orchestration.replay", spec.name,
                        *([f"--label-delay {label_delay}"] if label_delay else [])]) + "`"
    counts = {"loop": str(len(launched)), "naive": "0", "static": "0",
              "every_30_days": str(len(range(0, n_days, 30))), "daily": str(n_days)}
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=200):
        lines = [
            f"# Replay of {served_days[0]}..{served_days[-1]} ({spec.name}): the self-retraining loop against the "
            "seasonal-naive forecast and calendar retraining" + (f", labels {label_delay} days late" if label_delay else ""),
            "", f"Command: {command}  ", f"Machine: {machine}; {time.strftime('%Y-%m-%d %H:%M')}  ",
            f"Daily graph: {n_days} days replayed through the daily job plus sensors in {graph_seconds / 60:.1f} min "
            f"({graph_seconds / max(n_days, 1):.2f} s/day, bootstrap included); baselines computed in "
            f"{baseline_seconds / 60:.1f} min. Failed daily runs: {len(failed)} {failed[:5]}.", "",
            f"Retrain policy: `{replay.policy}` (sensor `{spec.name}_retrain_sensor`). Every model is the same recipe: "
            f"LightGBM on log1p(target), {WINDOW_DAYS}-day window, refit on the whole window for serving.", "",
            f"Retrains launched by the sensor: {len(launched)} ({promoted} promoted by the gate). "
            f"Alerts sent: {len(replay.alerts)}.", "",
            f"## {unit}, the same rows for every policy", "",
            "loop = champion served by the asset graph, retrained by the sensor through the gate; naive = the same "
            f"key {spec.seasonal_period_days} days earlier (no model); static = trained once on the first "
            f"{WINDOW_DAYS} days; every_30_days / daily = the recipe refit on a calendar.", "",
            "| | " + " | ".join(policies) + " |", "|---|" + "---:|" * len(policies),
            "| overall | " + " | ".join(f"{overall[p]:.2f}" for p in policies) + " |",
            f"| {year} | " + " | ".join(f"{mae_year[p]:.2f}" for p in policies) + " |",
            "| retrains | " + " | ".join(counts.get(p, "-") for p in policies) + " |", "",
            f"![monthly MAE per policy]({out.with_suffix('.png').name})", "",
            "## Label-free performance estimate against the realized daily MAE", "",
            f"{year}: {estimate_year}  ", f"all days: {estimate_all}", "",
            "## MAE by month", "", str(monthly), "",
            "## Retrains", "",
            str(pl.DataFrame(replay.retrains).select("day", "cutoff", "promoted", "champion_after", "reason")), "",
            "## Alerts (partition | root asset | cause)", "",
            *[f"- {a}" for a in replay.alerts[:40]],
            *([f"- ... and {len(replay.alerts) - 40} more"] if len(replay.alerts) > 40 else []),
        ]
    out.parent.mkdir(parents=True, exist_ok=True)
    render_png(monthly, policies, launched, out.with_suffix(".png"), unit)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({
        "graph_seconds": graph_seconds, "baseline_seconds": baseline_seconds, "machine": machine, "days": n_days,
        "failed": failed,
        "label_delay_days": label_delay, "retrains": replay.retrains, "alerts": replay.alerts,
        "overall_mae": overall, f"mae_{year}": mae_year, f"estimate_{year}": estimate_year, "estimate_all": estimate_all,
        "monthly": monthly.to_dicts(), "champion_versions": frame["model_version"].unique().to_list(),
    }, indent=2, default=str))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
