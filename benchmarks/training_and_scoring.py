"""Benchmark (not a test): per model family, training time with default params on 2011, hold-out MAE,
ONNX vs native batch-scoring throughput on 1,000,000 generated rows, parity and serving latency.

Numbers are medians of ``--runs`` runs; results go to benchmarks/results/training_and_scoring.md.
Run: python benchmarks/training_and_scoring.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.features import build_features, feature_matrix, feature_names  # noqa: E402
from ml.models import FAMILIES, make_model  # noqa: E402
from ml.onnx_scoring import OnnxModel, parity, servability  # noqa: E402
from ml.usecases.bike_rentals import SPEC  # noqa: E402

GENERATED_ROWS = 1_000_000
PARITY_TOLERANCE = 1e-4
WEATHER = ("temp", "atemp", "hum", "windspeed")  # continuous columns that get noise in generated rows
TARGETS = {"trees": 250_000, "mlp": 1_000_000}  # ONNX rows/s on this 2-core machine
TRAIN_TARGET_SECONDS = 30.0


def load_2011() -> dict[str, np.ndarray]:
    """2011 split by date: train to Nov 17, validation (early stopping) Nov 18 - Dec 1, hold-out last 30 days."""
    raw = pl.read_csv(ROOT / "data" / "bike_sharing_hourly.csv", try_parse_dates=True)
    year = build_features(SPEC, raw.filter(pl.col("dteday").dt.year() == 2011))
    X, y = feature_matrix(SPEC, year), year["cnt"].to_numpy().astype(np.float64)
    day = year["dteday"].cast(pl.String).to_numpy()
    train, hold = day < "2011-11-18", day >= "2011-12-02"
    val = ~train & ~hold
    return {
        "X": X,
        "X_train": X[train],
        "y_train": y[train],
        "X_val": X[val],
        "y_val": y[val],
        "X_hold": X[hold],
        "y_hold": y[hold],
    }


def generate_rows(X: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Real rows resampled with replacement, weather columns jittered (sd 0.02, clipped to [0, 1])."""
    rng = np.random.default_rng(seed)
    out = X[rng.integers(0, len(X), n)].copy()
    names = feature_names(SPEC)
    for col in (names.index(w) for w in WEATHER):
        out[:, col] = np.clip(out[:, col] + rng.normal(0, 0.02, n), 0, 1)
    return out


def median_seconds(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    timings, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        timings.append(time.perf_counter() - start)
    return float(np.median(timings)), result


def bench(family: str, data: dict[str, np.ndarray], rows: np.ndarray, runs: int) -> dict[str, object]:
    train = lambda: make_model(family).fit(data["X_train"], data["y_train"], data["X_val"], data["y_val"])  # noqa: E731
    train_s, model = median_seconds(train, runs)
    onnx_bytes = model.to_onnx()
    scorer = OnnxModel(onnx_bytes)
    scorer.predict(rows[:1000])  # warm-up
    onnx_s, onnx_pred = median_seconds(lambda: scorer.predict(rows), runs)
    native_s, native_pred = median_seconds(lambda: model.predict(rows), runs)
    check = parity(native_pred, onnx_pred, PARITY_TOLERANCE)
    serve = servability(onnx_bytes, data["X_hold"])
    return {
        "family": family,
        "train_s": train_s,
        "hold_mae": float(np.abs(scorer.predict(data["X_hold"]) - data["y_hold"]).mean()),
        "onnx_rps": len(rows) / onnx_s,
        "native_rps": len(rows) / native_s,
        "max_abs": check.max_abs,
        "max_rel": check.max_rel,
        "parity_ok": check.passed,
        "latency_ms": serve.latency_ms_per_1k,
        "size": serve.size_bytes,
        "params": model.params,
    }


def markdown(results: list[dict[str, object]], data: dict[str, np.ndarray], runs: int, load: float) -> str:
    import onnxruntime
    import sklearn
    import torch

    ok = lambda good: "yes" if good else "**NO**"  # noqa: E731
    lines = [
        "# Training and scoring benchmark",
        "",
        "Written by `python benchmarks/training_and_scoring.py` "
        f"(medians of {runs} runs). Machine: {os.cpu_count()} CPUs, {platform.machine()}, "
        f"load average {load:.2f} at start (the machine is shared; throughput varies ±30% between runs). "
        f"Versions: torch {torch.__version__}, scikit-learn {sklearn.__version__}, onnxruntime {onnxruntime.__version__}.",
        "",
        f"Data: 2011 with `ml.features` ({data['X'].shape[1]} features): train {len(data['X_train'])} rows "
        f"(to 2011-11-17), validation {len(data['X_val'])} rows (2011-11-18..12-01, MLP early stopping), "
        f"hold-out {len(data['X_hold'])} rows (last 30 days, 2011-12-02..12-31). "
        f"Scoring: {GENERATED_ROWS:,} rows resampled from 2011 with weather noise (seed 0), "
        f"ONNX through `OnnxModel` (all cores, 65,536-row slices), native through the model's `predict`.",
        "",
        "| family | train s (target < 30) | hold-out MAE | ONNX rows/s (target) | native rows/s | "
        "parity max abs / max rel (tol 1e-4) | latency ms / 1,000 rows | ONNX bytes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        target = TARGETS[r["family"]]
        lines.append(
            f"| {r['family']} | {r['train_s']:.2f} ({ok(r['train_s'] < TRAIN_TARGET_SECONDS)}) | {r['hold_mae']:.1f} "
            f"| {r['onnx_rps']:,.0f} (>= {target:,}: {ok(r['onnx_rps'] >= target)}) | {r['native_rps']:,.0f} "
            f"| {r['max_abs']:.2e} / {r['max_rel']:.2e} ({ok(r['parity_ok'])}) | {r['latency_ms']:.3f} | {r['size']:,} |"
        )
    lines += ["", "Default params:", ""] + [f"- {r['family']}: `{r['params']}`" for r in results]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "training_and_scoring.md")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    data = load_2011()
    rows = generate_rows(data["X"], GENERATED_ROWS)
    results = []
    for family in FAMILIES:
        results.append(bench(family, data, rows, args.runs))
        print({k: v for k, v in results[-1].items() if k != "params"}, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(results, data, args.runs, load))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
