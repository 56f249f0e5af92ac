"""Drift report speed and verdicts: ml.drift vs Evidently's DataDriftPreset on 1M vs 1M rows.

Usage (Evidently 0.7.23 needs pandas 2, so it gets its own venv, from the project root):
    python3.11 -m venv benchmarks/.venv-evidently
    benchmarks/.venv-evidently/bin/pip install -r benchmarks/requirements-evidently.txt
    benchmarks/.venv-evidently/bin/python benchmarks/drift_vs_evidently.py [--rows N] [--out FILE]

Both tools see the same 13 columns of the bike schema (every column except the target `cnt`,
the event date and the ignored ids), generated here with numpy, seeded; the current frame has
shifts injected on temp, hum, weathersit and casual (atemp follows temp).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.drift import build_reference, compare  # noqa: E402
from ml.usecases.bike_rentals import SPEC  # noqa: E402

COLUMNS = [c for c in SPEC.columns if c.name not in {SPEC.target, SPEC.event_date, *SPEC.ignored}]
CATEGORICAL = [c.name for c in COLUMNS if c.categorical]
NUMERIC = [c.name for c in COLUMNS if not c.categorical]
SHIFTED = ("temp", "atemp", "hum", "weathersit", "casual")
CHUNK = "batch"  # reference split in 50 batches for the out-of-fold thresholds


def generate(n: int, seed: int, shift: bool) -> pl.DataFrame:
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
        CHUNK: np.arange(n) * 50 // n,
    })


def time_ours(ref: pl.DataFrame, cur: pl.DataFrame, runs: int) -> tuple[dict, object]:
    names = [c.name for c in COLUMNS]
    times = {"build": [], "compare": [], "total": []}
    for _ in range(runs):
        start = time.perf_counter()
        reference = build_reference(ref, names, CATEGORICAL, chunk_column=CHUNK)
        built = time.perf_counter()
        report = compare(reference, cur)
        done = time.perf_counter()
        times["build"].append(built - start)
        times["compare"].append(done - built)
        times["total"].append(done - start)
    return {k: statistics.median(v) for k, v in times.items()}, report


def time_evidently(ref: pl.DataFrame, cur: pl.DataFrame, runs: int) -> tuple[float, dict]:
    """Median seconds of Dataset.from_pandas + Report.run (polars -> pandas is not timed)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    names = [c.name for c in COLUMNS]
    ref_pd, cur_pd = ref.select(names).to_pandas(), cur.select(names).to_pandas()
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(
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
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")),
               platform.processor())
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))) / 2**20
    import os

    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.platform()}"


def versions() -> str:
    from importlib.metadata import version

    names = ("evidently", "pandas", "polars", "numpy", "scipy")
    return ", ".join([f"python {platform.python_version()}"] + [f"{n} {version(n)}" for n in names])


def render(args, ours: dict, report, evidently_s: float, evidently: dict) -> str:
    ratio = evidently_s / ours["total"]
    evidently_share = sum(v[3] for v in evidently.values()) / len(evidently)
    lines = [
        "# Drift report: ml.drift vs Evidently DataDriftPreset",
        "",
        f"Command: `benchmarks/.venv-evidently/bin/python benchmarks/drift_vs_evidently.py "
        f"--rows {args.rows}`",
        "",
        f"- Machine: {machine()}",
        f"- Versions: {versions()}",
        f"- Data: {args.rows:,} reference vs {args.rows:,} current rows, 13 bike columns "
        f"({len(NUMERIC)} numeric, {len(CATEGORICAL)} categorical), generated with numpy "
        "(seeds 1, 2); "
        f"shift injected in the current frame on {', '.join(SHIFTED)} (atemp through temp, and "
        "casual/registered partly through weathersit).",
        f"- ml.drift: `build_reference` (sketch + out-of-fold thresholds on {CHUNK!r}, 50 chunks) "
        f"then `compare`, median of {args.runs_ours} runs. Evidently: `Dataset.from_pandas` + "
        f"`Report([DataDriftPreset()]).run`, median of {args.runs_evidently} runs, same process; "
        "the polars -> pandas conversion it needs is not timed.",
        "",
        "| | median seconds |",
        "|---|---|",
        f"| ml.drift build ReferenceStats | {ours['build']:.3f} |",
        f"| ml.drift compare | {ours['compare']:.3f} |",
        f"| ml.drift total | {ours['total']:.3f} |",
        f"| Evidently DataDriftPreset | {evidently_s:.2f} |",
        f"| **speed-up (Evidently / ml.drift total)** | **{ratio:.0f}x** |",
        "",
        f"Dataset verdict: ml.drift **{'drifted' if report.drifted else 'no drift'}** "
        f"({report.share_drifted:.0%} of features), Evidently "
        f"**{'drifted' if evidently_share >= 0.5 else 'no drift'}** "
        f"({evidently_share:.0%}; both drift at 50 %). Column verdicts agree on "
        f"{sum(r.drifted == evidently[r.column][3] for r in report.columns)} of "
        f"{len(report.columns)} columns.",
        "",
        "ml.drift's build runs once per reference (training) data set; each day only pays "
        "`compare`. Evidently has no reusable reference summary: each report reads both frames.",
        "",
        "| column | shifted | ml.drift | decided by (PSI / thr) | Evidently | method: score |",
        "|---|---|---|---|---|---|",
    ]
    for row in report.columns:
        method, score, _, drifted = evidently[row.column]
        lines.append(
            f"| {row.column} | {'yes' if row.column in SHIFTED else ''} | "
            f"{'drifted' if row.drifted else 'no'} | {', '.join(row.drifted_by) or '–'} "
            f"({row.stats['psi']:.3g} / {row.thresholds['psi']:.3g}) | "
            f"{'drifted' if drifted else 'no'} | {method}: {score:.3g} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs-ours", type=int, default=5)
    parser.add_argument("--runs-evidently", type=int, default=3)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks/results/drift_vs_evidently.md")
    args = parser.parse_args()
    ref, cur = generate(args.rows, 1, shift=False), generate(args.rows, 2, shift=True)
    ours, report = time_ours(ref, cur, args.runs_ours)
    print(f"ml.drift: {ours}", flush=True)
    evidently_s, evidently = time_evidently(ref, cur, args.runs_evidently)
    print(f"evidently: {evidently_s:.2f} s", flush=True)
    text = render(args, ours, report, evidently_s, evidently)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
