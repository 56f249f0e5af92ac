"""Drift report speed and verdicts: ml.drift vs Evidently's DataDriftPreset on 1M vs 1M rows.

Usage (Evidently 0.7.23 needs pandas 2, so it gets its own venv, from the project root):
    python3.11 -m venv benchmarks/.venv-evidently
    benchmarks/.venv-evidently/bin/pip install -r benchmarks/requirements-evidently.txt
    benchmarks/.venv-evidently/bin/python benchmarks/drift_vs_evidently.py [--rows N] [--out FILE]

Two data sets, generated here with numpy, seeded, reference and current of `--rows` each:
- bike: the 13 columns of the bike schema (every column except the target `cnt`, the event date
  and the ignored ids); the current frame has shifts injected on temp, hum, weathersit and casual
  (atemp follows temp);
- shapes: 13 columns of varied shapes (normal, lognormal, Poisson ties, zero-inflated, bimodal,
  outliers, ...), a few of them shifted in the current frame.
The reference rows are spread over `DAYS` days, as a training window is; ml.drift calibrates its
bars on resampled windows of `WINDOW_DAYS` of them (its monitor's default).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestration.host import describe  # noqa: E402
from ml.drift import build_reference, compare  # noqa: E402
from ml.usecases.bike_rentals import SPEC  # noqa: E402

DAY = "day"  # reference rows spread over DAYS days, the calibration's unit
DAYS, WINDOW_DAYS = 90, 7


@dataclass(frozen=True)
class DataSet:
    name: str
    generate: Callable[[int, int, bool], pl.DataFrame]  # (rows, seed, shift) -> frame
    numeric: list[str]
    categorical: list[str]
    shifted: tuple[str, ...]
    description: str

    @property
    def columns(self) -> list[str]:
        return self.numeric + self.categorical


def with_days(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.Series(DAY, np.arange(frame.height) * DAYS // frame.height))


def generate_bike(n: int, seed: int, shift: bool) -> pl.DataFrame:
    """Hourly-like rows with the bike file's ranges, rounding and correlations."""
    rng = np.random.default_rng(seed)
    mnth = rng.integers(1, 13, n)
    hr = rng.integers(0, 24, n)
    weekday = rng.integers(0, 7, n)
    holiday = (rng.random(n) < 0.029).astype(np.int64)
    workingday = ((weekday >= 1) & (weekday <= 5) & (holiday == 0)).astype(np.int64)
    season = (mnth % 12) // 3 + 1
    probs = [0.45, 0.35, 0.2, 0.0] if shift else [0.657, 0.261, 0.0817, 0.0003]
    weathersit = rng.choice(4, n, p=np.array(probs) / sum(probs)) + 1
    seasonal = 0.5 - 0.22 * np.cos(2 * np.pi * (mnth - 1.5) / 12)
    diurnal = 0.05 * np.sin(2 * np.pi * (hr - 9) / 24)
    temp = seasonal + diurnal + rng.normal(0, 0.08, n) + (0.1 if shift else 0.0)
    temp = np.round(np.clip(temp, 0.02, 1.0), 2)
    atemp = np.round(np.clip(0.92 * temp + 0.02 + rng.normal(0, 0.02, n), 0.0, 1.0), 4)
    hum = 0.55 + 0.08 * (weathersit - 1) + rng.normal(0, 0.17, n) - (0.1 if shift else 0.0)
    hum = np.round(np.clip(hum, 0.0, 1.0), 2)
    windspeed = np.round(np.clip(rng.gamma(2.2, 0.087, n), 0.0, 0.85), 4)
    profile = 0.3 + np.exp(-((hr - 8) ** 2) / 4) + 1.2 * np.exp(-((hr - 17.5) ** 2) / 5)
    weather = 1.0 - 0.25 * (weathersit - 1)
    casual_mean = 30 * temp * profile * weather * (2.0 - workingday) * (1.3 if shift else 1.0)
    casual = rng.poisson(casual_mean)
    registered_mean = 140 * profile * weather * (0.6 + 0.4 * workingday)
    registered = rng.negative_binomial(5, 5 / (5 + registered_mean))
    return pl.DataFrame({
        "season": season, "mnth": mnth, "hr": hr, "holiday": holiday, "weekday": weekday,
        "workingday": workingday, "weathersit": weathersit, "temp": temp, "atemp": atemp,
        "hum": hum, "windspeed": windspeed, "casual": casual, "registered": registered,
    })


def generate_shapes(n: int, seed: int, shift: bool) -> pl.DataFrame:
    """Shapes that trip binning and CDF code: skew, ties, zero mass, two modes, rare outliers."""
    rng = np.random.default_rng(seed)
    s = 1.0 if shift else 0.0
    bimodal = np.where(rng.random(n) < 0.5 + 0.1 * s, rng.normal(-2, 0.7, n), rng.normal(2, 0.7, n))
    outlier = rng.random(n) < 0.005 + 0.015 * s
    zipf = 1 / np.arange(1, 51)
    return pl.DataFrame({
        "normal": rng.normal(0.1 * s, 1, n),  # shifted by 0.1 sd
        "normal_wide": np.round(rng.normal(100, 15, n), 1),
        "lognormal": rng.lognormal(0.1 * s, 1, n),  # scale x 1.1
        "exponential": rng.exponential(1, n),
        "poisson": rng.poisson(3 + 0.3 * s, n),  # a handful of tied values
        "zero_inflated": np.where(rng.random(n) < 0.6 + 0.1 * s, 0.0, np.round(rng.gamma(2, 5, n), 2)),
        "bimodal": bimodal,  # modes re-weighted 60/40
        "outliers": np.where(outlier, rng.normal(0, 50, n), rng.normal(0, 1, n)),  # 2 % outliers, not 0.5 %
        "uniform": rng.random(n),
        "beta": rng.beta(2, 5, n),
        "small_cats": rng.choice(3, n, p=[0.45, 0.3, 0.25] if shift else [0.5, 0.3, 0.2]),
        "many_cats": rng.choice(50, n, p=zipf / zipf.sum()),
        "binary": (rng.random(n) < 0.1).astype(np.int64),
    })


_BIKE = [c for c in SPEC.columns if c.name not in {SPEC.target, SPEC.event_date, *SPEC.ignored}]
DATASETS = (
    DataSet("bike", generate_bike, [c.name for c in _BIKE if not c.categorical],
            [c.name for c in _BIKE if c.categorical], ("temp", "atemp", "hum", "weathersit", "casual"),
            "the 13 bike columns, hourly-like rows with the bike file's ranges, rounding and correlations; "
            "casual/registered partly follow weathersit"),
    DataSet("shapes", generate_shapes,
            ["normal", "normal_wide", "lognormal", "exponential", "poisson", "zero_inflated", "bimodal",
             "outliers", "uniform", "beta"], ["small_cats", "many_cats", "binary"],
            ("normal", "lognormal", "poisson", "zero_inflated", "bimodal", "outliers", "small_cats"),
            "13 columns of varied shapes: normal, rounded normal, lognormal, exponential, Poisson(3) ties, "
            "60 % zeros + gamma, bimodal, normal with 0.5 % wide outliers, uniform, beta(2, 5), 3, 50 "
            "(Zipf) and 2 categories"),
)


def time_ours(data: DataSet, ref: pl.DataFrame, cur: pl.DataFrame, runs: int) -> tuple[dict, object]:
    """Median seconds of build_reference (sketch + calibration) and of compare."""
    times = {"build": [], "compare": [], "total": []}
    for _ in range(runs):
        start = time.perf_counter()
        reference = build_reference(ref, data.columns, data.categorical, day_column=DAY,
                                    window_days=WINDOW_DAYS)
        built = time.perf_counter()
        report = compare(reference, cur)
        done = time.perf_counter()
        times["build"].append(built - start)
        times["compare"].append(done - built)
        times["total"].append(done - start)
    return {k: statistics.median(v) for k, v in times.items()}, report


def our_bars(data: DataSet, report) -> dict:
    """DataDriftPreset options that decide each column by the statistic and bar ml.drift used: the
    Wasserstein distance over the reference sd against its noise bar (numeric), PSI against its bar
    (categorical). With them, equal verdicts mean the two tools compute the same statistics."""
    rows = {r.column: r for r in report.columns}
    methods = {c: "wasserstein" for c in data.numeric} | {c: "psi" for c in data.categorical}
    return {"per_column_method": methods,
            "per_column_threshold": {c: rows[c].thresholds["wasserstein" if m == "wasserstein" else "psi"]
                                     for c, m in methods.items()}}


def time_evidently(data: DataSet, ref: pl.DataFrame, cur: pl.DataFrame, runs: int,
                   options: dict | None = None) -> tuple[float, dict]:
    """Median seconds of Dataset.from_pandas + Report.run (polars -> pandas is not timed); `options`
    for DataDriftPreset (its defaults if None)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref_pd, cur_pd = ref.select(data.columns).to_pandas(), cur.select(data.columns).to_pandas()
    definition = DataDefinition(numerical_columns=data.numeric, categorical_columns=data.categorical)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        snapshot = Report([DataDriftPreset(**(options or {}))]).run(
            Dataset.from_pandas(cur_pd, data_definition=definition),
            Dataset.from_pandas(ref_pd, data_definition=definition))
        times.append(time.perf_counter() - start)
    verdicts = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            score, method, threshold = metric["value"], config["method"], config["threshold"]
            # Evidently: p-value tests drift below the threshold, distances at or above it
            drifted = score < threshold if "p_value" in method else score >= threshold
            verdicts[config["column"]] = (method, score, threshold, drifted)
    return statistics.median(times), verdicts


def machine() -> str:
    import os

    # other jobs sharing the cores slow both tools; the 15-minute load average says how busy it was
    return (f"{describe()}, {platform.platform()}; "
            f"load average {os.getloadavg()[2]:.1f} over the 15 minutes before the report")


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            return f"no {name}"

    names = ("evidently", "pandas", "polars", "numpy", "scipy")
    return ", ".join([f"python {platform.python_version()}"] + [installed(n) for n in names])


def interpreter() -> str:
    python = Path(sys.executable)
    return str(python.relative_to(ROOT) if python.is_relative_to(ROOT) else python)


def render(args, results: list[tuple[DataSet, dict, object, dict[str, tuple[float, dict]]]]) -> str:
    lines = [
        "# Drift report: ml.drift vs Evidently DataDriftPreset",
        "",
        f"Command: `{interpreter()} benchmarks/drift_vs_evidently.py --rows {args.rows}"
        f"{' --skip-evidently' if args.skip_evidently else ''}`",
        "",
        f"- Machine: {machine()}",
        f"- Versions: {versions()}",
        f"- Data: {args.rows:,} reference vs {args.rows:,} current rows per data set, generated with numpy "
        f"(seeds 1, 2); the reference rows spread over {DAYS} days. Rows are independent across days, so "
        f"the bars measure the row-sampling noise of {args.rows * WINDOW_DAYS // DAYS:,}-row windows, or are "
        "the floors where that noise is smaller.",
        f"- ml.drift: `build_reference` (sketch + bars from {WINDOW_DAYS}-day windows of random reference days, "
        f"resampled) then `compare`, median of {args.runs_ours} runs. Evidently: `Dataset.from_pandas` + "
        f"`Report([DataDriftPreset(...)]).run`, median of {args.runs_evidently} runs, same process, twice: "
        "with its defaults (a fixed bar of 0.1 on the normed Wasserstein distance or the Jensen-Shannon "
        "distance), and with ml.drift's bars (each column decided by the normed Wasserstein distance, "
        "categorical ones by PSI, against the bar ml.drift calibrated for that column); the polars -> pandas "
        "conversion it needs is not timed.",
        "",
        "| data set | ml.drift build | ml.drift compare | ml.drift build + compare | Evidently preset "
        "| Evidently | Evidently / (build + compare) | Evidently / compare | column verdicts agree with Evidently "
        "| ml.drift agrees with injected | Evidently agrees with injected |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for data, ours, report, runs in results:
        n = len(report.columns)
        truth = sum(r.drifted == (r.column in data.shifted) for r in report.columns)
        head = f"| {data.name} | {ours['build']:.3f} s | {ours['compare']:.3f} s | {ours['total']:.3f} s | "
        if not runs:
            lines.append(head + f"not run | – | – | – | – | {truth} of {n} | – |")
        for preset, (seconds, evidently) in runs.items():
            agree = sum(r.drifted == evidently[r.column][3] for r in report.columns)
            theirs = sum(evidently[r.column][3] == (r.column in data.shifted) for r in report.columns)
            lines.append(head + f"{preset} | {seconds:.2f} s | **{seconds / ours['total']:.0f}x** | "
                         f"**{seconds / ours['compare']:.0f}x** | {agree} of {n} | {truth} of {n} | {theirs} of {n} |")
    lines += ["", "ml.drift's build runs once per reference (training) data set; each window only pays "
              "`compare`. Evidently has no reusable reference summary: each report reads both frames. "
              "\"Agrees with injected\" counts the column verdicts that match the shifts written into the "
              "generator (the `shifted` column below); a column that follows a shifted one without a shift "
              "of its own (bike `registered` depends on `weathersit`) counts as a miss there, though its "
              "distribution did move. W1/sd is ml.drift's Wasserstein distance in reference standard "
              "deviations, what Evidently reports as \"Wasserstein distance (normed)\" for numeric columns; "
              "ml.drift's bar is the noise of a window, floored at 0.025, Evidently's default a fixed 0.1. "
              "The per-column tables show Evidently with its defaults."]
    for data, _, report, runs in results:
        evidently = runs["defaults"][1] if runs else {}
        lines += ["", f"## {data.name}: {data.description}", "",
                  f"Shift injected in the current frame on {', '.join(data.shifted)}. ml.drift "
                  f"**{'drifted' if report.drifted else 'no drift'}** ({report.share_drifted:.0%} of features)"
                  + ("" if not runs else
                     f", Evidently **{'drifted' if _share(evidently) >= 0.5 else 'no drift'}** "
                     f"({_share(evidently):.0%}); both drift at 50 %."),
                  "",
                  "| column | shifted | ml.drift | decided by | PSI (thr) | KS (thr) | W1/sd (thr) | out of range "
                  "| Evidently | method: score |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in report.columns:
            theirs = evidently.get(row.column)
            verdict = "– | –" if theirs is None else (
                f"{'drifted' if theirs[3] else 'no'} | {theirs[0]}: {theirs[1]:.3g}")
            lines.append(
                f"| {row.column} | {'yes' if row.column in data.shifted else ''} | "
                f"{'drifted' if row.drifted else 'no'} | {', '.join(row.drifted_by) or '–'} | "
                f"{_value(row, 'psi')} | {_value(row, 'ks')} | {_value(row, 'wasserstein')} | "
                f"{row.stats['out_of_range']:.2g} | {verdict} |")
    return "\n".join(lines) + "\n"


def _value(row, stat: str) -> str:
    """`value (threshold)`, or – where the statistic does not apply (KS or W1 of a categorical)."""
    return "–" if stat not in row.thresholds else f"{row.stats[stat]:.3g} ({row.thresholds[stat]:.3g})"


def _share(evidently: dict) -> float:
    return sum(v[3] for v in evidently.values()) / len(evidently)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs-ours", type=int, default=5)
    parser.add_argument("--runs-evidently", type=int, default=3)
    parser.add_argument("--skip-evidently", action="store_true", help="time ml.drift only")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks/results/drift_vs_evidently.md")
    args = parser.parse_args()
    results = []
    for data in DATASETS:
        ref, cur = with_days(data.generate(args.rows, 1, False)), data.generate(args.rows, 2, True)
        ours, report = time_ours(data, ref, cur, args.runs_ours)
        print(f"{data.name} ml.drift: {ours}", flush=True)
        runs = {} if args.skip_evidently else {
            "defaults": time_evidently(data, ref, cur, args.runs_evidently),
            "ml.drift's bars": time_evidently(data, ref, cur, args.runs_evidently, our_bars(data, report))}
        print(f"{data.name} evidently: { {k: v[0] for k, v in runs.items()} } s", flush=True)
        results.append((data, ours, report, runs))
    text = render(args, results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
