"""How ONNX Runtime's tree-ensemble kernel takes a 1,000-row batch: on one thread or two, whole or in slices.

Usage (from the project root):
    .venv/bin/python benchmarks/tree_scoring.py [--rounds 60] [--idle-ms 100] [--slices 128,256] [--root DIR]

The champion of online_load's scratch registry (300 LightGBM trees; `--root` keeps and reuses it)
scores 1,000 real validated rows of its lake, feature matrix built by the one feature definition,
through plain onnxruntime sessions: the whole batch on one thread (what ml.onnx_scoring does for a
tree ensemble) and on two (what the server did before for 256 rows or more), and in slices of
`--slices` rows on one thread (ONNX Runtime picks its tree-ensemble loop by batch size). The ways
alternate call by call, first back to back, then each after `--idle-ms` of sleep (a request
arriving at 10/s on a quiet server). Medians in ms; each way's predictions are compared bit for bit
with the whole batch on one thread. Results: benchmarks/results/tree_scoring.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.online_load import ROOT_HELP, champion_onnx, scratch_root, validated_rows  # noqa: E402
from ml.features import build_features, feature_matrix  # noqa: E402
from ml.models.base import as_features  # noqa: E402
from ml.onnx_scoring import _session_options  # noqa: E402
from ml.usecases import BIKE_RENTALS  # noqa: E402
from orchestration.host import result_header, write_result  # noqa: E402


def score(session: ort.InferenceSession, X: np.ndarray, rows: int | None) -> np.ndarray:
    name = session.get_inputs()[0].name
    step = rows or len(X)
    return np.concatenate([session.run(None, {name: X[i:i + step]})[0].ravel() for i in range(0, len(X), step)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--idle-ms", type=float, default=100.0)
    parser.add_argument("--slices", default="128,256", help="slice sizes, comma-separated")
    parser.add_argument("--root", type=Path, help=ROOT_HELP + " (online_load's)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/tree_scoring.md")
    args = parser.parse_args()
    ways = {"whole, 1 thread": (1, None), "whole, 2 threads": (2, None),
            **{f"slices of {rows}, 1 thread": (1, int(rows)) for rows in args.slices.split(",")}}
    with scratch_root(args.root) as root:
        version, onnx = champion_onnx(root)
        rows = validated_rows(root).sample(1000, with_replacement=True, seed=0)
    X = as_features(feature_matrix(BIKE_RENTALS, build_features(BIKE_RENTALS, rows)))
    sessions = {threads: ort.InferenceSession(onnx, _session_options(threads), providers=["CPUExecutionProvider"])
                for threads in (1, 2)}
    reference = score(sessions[1], X, None)
    same = {way: bool(np.array_equal(score(sessions[t], X, r), reference)) for way, (t, r) in ways.items()}
    results = {}
    for label, idle in (("back to back", 0.0), (f"after {args.idle_ms:g} ms idle", args.idle_ms / 1000)):
        times: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(args.rounds):
            for way, (threads, slice_rows) in ways.items():
                time.sleep(idle)
                started = time.perf_counter()
                score(sessions[threads], X, slice_rows)
                times[way].append((time.perf_counter() - started) * 1000)
        results[label] = {way: statistics.median(t) for way, t in times.items()}
    lines = result_header("A 1,000-row batch through the tree ensemble: whole or in slices",
                          f".venv/bin/python benchmarks/tree_scoring.py --rounds {args.rounds} "
                          f"--idle-ms {args.idle_ms:g} --slices {args.slices}")
    lines += [f"Champion v{version} of online_load's scratch registry; 1,000 real validated rows. "
              "Medians in ms over the rounds, the ways alternating call by call; ratio to the whole batch on "
              "one thread in brackets. \"Same bits\": the predictions equal the whole batch's on one thread.", "",
              "| way | " + " | ".join(results) + " | same bits |", "|---|" + "---:|" * len(results) + "---|"]
    base = {label: r["whole, 1 thread"] for label, r in results.items()}
    for way in ways:
        cells = " | ".join(f"{r[way]:.2f} ({r[way] / base[label]:.2f}x)" for label, r in results.items())
        lines.append(f"| {way} | {cells} | {'yes' if same[way] else 'no'} |")
    write_result(args.out, lines)


if __name__ == "__main__":
    main()
