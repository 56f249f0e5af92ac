"""Where a 1,000-row request's time goes inside the server, back to back and after the server idled.

Usage (from the project root):
    .venv/bin/python benchmarks/request_stages.py [--requests 60] [--idle-ms 100] [--root DIR]

The server's own stages, in this process and with its code: parse the V2 body, spell out the cells,
judge them (row contract and features, memoized as the server does, warmed from the lake's last 90
days), score with ONNX Runtime as the server does (a tree ensemble: one thread), and write
the answer. Each stage is timed per request, first with the requests back to back, then with
`--idle-ms` of sleep before each: what a request arriving at 10/s meets on an otherwise quiet server
(benchmarks/online_load.py's 1,000-row phase). The champion and the lake are online_load's (`--root`
keeps and reuses them). Medians in milliseconds; results in benchmarks/results/request_stages.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.online_load import ROOT_HELP, bodies, champion_onnx, scratch_root  # noqa: E402
from ml.usecases import BIKE_RENTALS  # noqa: E402
from orchestration.host import result_header, write_result  # noqa: E402
from resources.storage import LocalStorage  # noqa: E402
from serving.app import recent_validated  # noqa: E402
from serving.models import ServedModel, served_model  # noqa: E402
from serving.protocol import infer_response, parse_request  # noqa: E402
from serving.rows import RequestRows  # noqa: E402

STAGES = ("parse", "cells", "judge", "onnx", "answer")


def timed(requests: list[bytes], rows: RequestRows, model: ServedModel, idle_s: float) -> dict:
    """Per stage, the median ms over `requests`, each after `idle_s` of sleep."""
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for body in requests:
        time.sleep(idle_s)
        started = time.perf_counter()
        payload = parse_request(body)
        parsed = time.perf_counter()
        cells = rows.cells(rows.columns(payload.inputs))
        spelled = time.perf_counter()
        X = rows.judge(cells).X
        judged = time.perf_counter()
        predictions = model.predict(X)
        scored = time.perf_counter()
        json.dumps(infer_response("rental_model", "1", "id", predictions.tolist(), {}))
        answered = time.perf_counter()
        for stage, seconds in (("parse", parsed - started), ("cells", spelled - parsed), ("judge", judged - spelled),
                               ("onnx", scored - judged),
                               ("answer", answered - scored)):
            times[stage].append(seconds * 1000)
    return {stage: statistics.median(values) for stage, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--idle-ms", type=float, default=100.0)
    parser.add_argument("--root", type=Path, help=ROOT_HELP + " (online_load's)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/request_stages.md")
    args = parser.parse_args()
    with scratch_root(args.root) as root:
        version, onnx = champion_onnx(root)
        rows = RequestRows(BIKE_RENTALS)
        rows.warm(recent_validated(BIKE_RENTALS, LocalStorage(root=str(root / "lake")), 90))
        requests = bodies(root, 1000, args.requests)
    model = served_model(version, onnx, threads=2)  # as the server's default
    timed(requests[:5], rows, model, 0.0)  # warm-up
    results = {"back to back": timed(requests, rows, model, 0.0),
               f"after {args.idle_ms:g} ms idle": timed(requests, rows, model, args.idle_ms / 1000)}
    lines = result_header("A 1,000-row request inside the server, stage by stage",
                          f".venv/bin/python benchmarks/request_stages.py --requests {args.requests} "
                          f"--idle-ms {args.idle_ms:g}")
    lines += [
        "Medians in ms over the same requests (real validated rows of the lake); ONNX as the server scores "
        "1,000 rows (the champion is a tree ensemble: one thread); "
        "served total = the sum of its stages' medians.", "",
        "| | " + " | ".join(STAGES) + " | served total |", "|---|" + "---:|" * (len(STAGES) + 1),
        *[f"| {name} | " + " | ".join(f"{r[s]:.2f}" for s in STAGES) + f" | {sum(r.values()):.2f} |"
          for name, r in results.items()],
    ]
    write_result(args.out, lines)


if __name__ == "__main__":
    main()
