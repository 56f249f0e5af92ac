"""How big the served trees should be: MAE on development and test days against the cost of scoring.

Usage (from the project root):
    .venv/bin/python benchmarks/tree_capacity.py [--use-case rentals --use-case seoul_bikes]

For each shipped data set and each variant of the tree recipe (trees, learning rate, leaves), the recipe
is refit every 7, 14 and 30 days on the 90 days before each cut-off (`ml.baselines.baseline_predictions`,
the replay's calendar policies) and scores every day from the replay's first served day to its last.
MAE is split into development days (chosen on) and test days (reported, not chosen on): the split is
`DEV_END` per use case. Cost: the median time of ONNX Runtime scoring 1,000 real rows on one thread (as the
server scores a tree ensemble) with the model fit at the middle of the served days, and the node count.
Results: benchmarks/results/tree_capacity.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.baselines import _fit, baseline_predictions  # noqa: E402
from ml.contract import split_rows  # noqa: E402
from ml.features import build_features, feature_matrix  # noqa: E402
from ml.models.base import as_features  # noqa: E402
from ml.models.trees import DEFAULTS  # noqa: E402
from ml.onnx_scoring import _session_options  # noqa: E402
from ml.usecases import USE_CASES, replay_file  # noqa: E402
from orchestration.host import result_header, write_result  # noqa: E402
from orchestration.replay import WINDOW_DAYS  # noqa: E402

# Development days end here (exclusive): the rentals' 2011 (the issue's test year is 2012), Seoul's spring.
DEV_END = {"rentals": date(2012, 1, 1), "seoul_bikes": date(2018, 7, 1)}
VARIANTS = [(300, 0.05, 31), (300, 0.05, 15), (200, 0.075, 15), (150, 0.1, 15), (100, 0.15, 15), (150, 0.1, 7)]
CADENCES = {"every_7_days": 7, "every_14_days": 14, "every_30_days": 30}


def onnx_cost(session: ort.InferenceSession, X: np.ndarray, calls: int = 60) -> float:
    name = session.get_inputs()[0].name
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        session.run(None, {name: X})
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(use_case: str) -> list[dict]:
    spec = USE_CASES[use_case]
    validated = split_rows(spec, (ROOT / replay_file(spec)).read_bytes(), "history").validated
    first, last = spec.partition_start + timedelta(days=WINDOW_DAYS), spec.partition_end
    middle = first + (last - first) / 2
    features = build_features(spec, validated)
    X = as_features(feature_matrix(spec, features.sample(1000, with_replacement=True, seed=0)))
    dev = pl.col(spec.event_date) < DEV_END[use_case]
    rows = []
    for trees, rate, leaves in VARIANTS:
        params = {"n_estimators": trees, "learning_rate": rate, "num_leaves": leaves}
        scored = baseline_predictions(spec, validated, first, last, "trees", params, WINDOW_DAYS, CADENCES)
        error = {p: (pl.col(p) - pl.col(spec.target)).abs().mean() for p in CADENCES}
        dev_mae = scored.filter(dev).select(**error).row(0, named=True)
        test_mae = scored.filter(~dev).select(**error).row(0, named=True)
        model = _fit(spec, features, middle, WINDOW_DAYS, "trees", params).to_onnx()
        nodes = sum(len(a.ints) for n in onnx.load_from_string(model).graph.node for a in n.attribute
                    if a.name == "nodes_nodeids")
        session = ort.InferenceSession(model, _session_options(1), providers=["CPUExecutionProvider"])
        rows.append({"trees": trees, "learning_rate": rate, "leaves": leaves, "dev": dev_mae, "test": test_mae,
                     "nodes": nodes, "ms": onnx_cost(session, X)})
        print(use_case, rows[-1], flush=True)
    return rows


def table(use_case: str, rows: list[dict]) -> list[str]:
    dev_mean = [statistics.mean(r["dev"].values()) for r in rows]
    best = min(dev_mean)
    served = next(i for i, r in enumerate(rows) if (r["trees"], r["learning_rate"], r["leaves"]) ==
                  (DEFAULTS["n_estimators"], DEFAULTS["learning_rate"], DEFAULTS["num_leaves"]))
    head = ["trees", "lr", "leaves", *(f"dev {p}" for p in CADENCES), "dev mean (vs best)",
            *(f"test {p}" for p in CADENCES), "nodes", "1,000 rows ONNX ms (vs served)"]
    lines = [f"## {use_case}: development days before {DEV_END[use_case]}, test days from it", "",
             "| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for i, r in enumerate(rows):
        mark = "**" if i == served else ""
        lines.append("| " + " | ".join([
            f"{mark}{r['trees']}{mark}", f"{r['learning_rate']:g}", str(r["leaves"]),
            *(f"{v:.2f}" for v in r["dev"].values()), f"{dev_mean[i]:.2f} (+{100 * (dev_mean[i] / best - 1):.1f}%)",
            *(f"{v:.2f}" for v in r["test"].values()), str(r["nodes"]),
            f"{r['ms']:.2f} ({r['ms'] / rows[served]['ms']:.2f}x)"]) + " |")
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--use-case", action="append", choices=sorted(DEV_END))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/tree_capacity.md")
    args = parser.parse_args()
    use_cases = args.use_case or sorted(DEV_END)
    lines = result_header("Tree capacity: MAE on development and test days against the cost of scoring",
                          ".venv/bin/python benchmarks/tree_capacity.py")
    lines += [f"The recipe refit every 7, 14 and 30 days on the {WINDOW_DAYS} days before each cut-off; MAE per row "
              "over the replay's served days. The served defaults in bold "
              f"({DEFAULTS['n_estimators']} trees, lr {DEFAULTS['learning_rate']}, {DEFAULTS['num_leaves']} leaves), "
              "chosen on the development columns only. ONNX: median of 60 calls, one thread, 1,000 real rows.", ""]
    for use_case in use_cases:
        lines += table(use_case, measure(use_case))
    write_result(args.out, lines)


if __name__ == "__main__":
    main()
