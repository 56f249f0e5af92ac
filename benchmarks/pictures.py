"""The daily graph's two pictures: drawn on a fresh figure against drawn on the kept frame of the day before.

Usage (from the project root):
    .venv/bin/python benchmarks/pictures.py [--rounds 30] [--out benchmarks/results/pictures.md]

The drift report's heat map (13 columns x 30 days) and the performance report's MAE plot (4 series x 30
days), as the replay draws them once its 30-day window is full. Each round draws each picture twice, on
new data: once after forgetting the kept frames (what every picture cost before frames were kept) and
once on the frame kept from the previous round; the two alternate in one process, so the machine's
swings fall on both. Medians and their ratio; the pictures are byte-identical either way
(tests/unit/test_drift_report.py).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from orchestration.host import result_header, write_result
from ml.drift import report

COLUMNS = ["temp", "atemp", "hum", "windspeed", "hr", "weekday", "season", "holiday", "workingday",
           "weathersit", "mnth", "yr", "cnt (prediction)"]
SERIES = ["champion (realized)", "challenger (shadow)", "seasonal naive", "estimated (label-free)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pictures.md"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    pictures = {
        "drift heat map (13 columns x 30 days)":
            lambda days: report.render_effect_heatmap_png(days, COLUMNS, rng.random((len(COLUMNS), len(days))) * 2),
        "MAE by day (4 series x 30 days)":
            lambda days: report.render_series_png(days, {s: list(rng.random(len(days)) * 50) for s in SERIES},
                                                  "MAE by day", "MAE"),
    }
    times: dict[tuple[str, str], list[float]] = {(p, way): [] for p in pictures for way in ("fresh", "kept")}
    for r in range(args.rounds + 1):  # round 0 warms imports and fonts
        days = [f"2011-{4 + (r + d) // 28:02d}-{(r + d) % 28 + 1:02d}" for d in range(30)]
        for name, draw in pictures.items():
            for way in ("fresh", "kept"):
                if way == "fresh":
                    report._FRAMES.clear()
                started = time.perf_counter()
                draw(days)
                if r:
                    times[(name, way)].append(time.perf_counter() - started)
    lines = result_header("The daily graph's pictures: fresh figure against kept frame",
                          f".venv/bin/python benchmarks/pictures.py --rounds {args.rounds}")
    lines += ["| picture | fresh figure, median ms | kept frame, median ms | kept / fresh |", "|---|---:|---:|---:|"]
    for name in pictures:
        fresh, kept = (statistics.median(times[(name, way)]) * 1000 for way in ("fresh", "kept"))
        lines.append(f"| {name} | {fresh:.1f} | {kept:.1f} | {kept / fresh:.2f} |")
    write_result(args.out, lines)


if __name__ == "__main__":
    main()
