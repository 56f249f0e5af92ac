"""Where a 1,000-row request's time goes inside the server, back to back and after the server idled.

Usage (from the project root):
    .venv/bin/python benchmarks/request_stages.py [--requests 60] [--idle-ms 100] [--root DIR]

The server's own stages, in this process and with its code: parse the V2 body, spell out the cells,
judge them (row contract and features, memoized as the server does, warmed from the lake's last 90
days), score with ONNX Runtime on one thread and on two (the server's session for 256 rows or more),
and write the answer. Each stage is timed per request, first with the requests back to back, then with
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

from benchmarks.online_load import ROOT_HELP, bodies, scratch_root  # noqa: E402
from ml.onnx_scoring import OnnxModel  # noqa: E402
from ml.usecases import BIKE_RENTALS  # noqa: E402
from orchestration.host import result_header, write_result  # noqa: E402
from resources.mlflow_tracking import CHAMPION, MlflowResource  # noqa: E402
from resources.storage import LocalStorage  # noqa: E402
from serving.app import recent_validated  # noqa: E402
from serving.protocol import infer_response, parse_request  # noqa: E402
from serving.rows import RequestRows  # noqa: E402

STAGES = ("parse", "cells", "judge", "onnx, 1 thread", "onnx, 2 threads", "answer")


def timed(requests: list[bytes], rows: RequestRows, one: OnnxModel, two: OnnxModel, idle_s: float) -> dict:
    """Per stage, the median ms over `requests`, each after `idle_s` of sleep. Requests alternate between
    the one-thread and the two-thread session, so each scores right after the judge, as in the server."""
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for i, body in enumerate(requests):
        time.sleep(idle_s)
        started = time.perf_counter()
        payload = parse_request(body)
        parsed = time.perf_counter()
        cells = rows.cells(rows.columns(payload.inputs))
        spelled = time.perf_counter()
        X = rows.judge(cells).X
        judged = time.perf_counter()
        predictions = (one if i % 2 == 0 else two).predict(X)
        scored = time.perf_counter()
        json.dumps(infer_response("rental_model", "1", "id", predictions.tolist(), {}))
        answered = time.perf_counter()
        for stage, seconds in (("parse", parsed - started), ("cells", spelled - parsed), ("judge", judged - spelled),
                               ("onnx, 1 thread" if i % 2 == 0 else "onnx, 2 threads", scored - judged),
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
        mlflow = MlflowResource(tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_root=str(root / "artifacts"))
        champion = mlflow.version_by_alias("rental_model", CHAMPION)
        onnx = mlflow.load_onnx("rental_model", champion.version)
        rows = RequestRows(BIKE_RENTALS)
        rows.warm(recent_validated(BIKE_RENTALS, LocalStorage(root=str(root / "lake")), 90))
        requests = bodies(root, 1000, args.requests)
    one, two = OnnxModel(onnx, threads=1), OnnxModel(onnx, threads=2)
    timed(requests[:5], rows, one, two, 0.0)  # warm-up
    results = {"back to back": timed(requests, rows, one, two, 0.0),
               f"after {args.idle_ms:g} ms idle": timed(requests, rows, one, two, args.idle_ms / 1000)}
    served = ("parse", "cells", "judge", "onnx, 2 threads", "answer")  # what the server runs for 1,000 rows
    lines = result_header("A 1,000-row request inside the server, stage by stage",
                          f".venv/bin/python benchmarks/request_stages.py --requests {args.requests} "
                          f"--idle-ms {args.idle_ms:g}")
    lines += [
        "Medians in ms over the same requests (real validated rows of the lake); ONNX alternates between a "
        "one-thread and a two-thread session, request by request. The server scores 1,000 rows on two threads; "
        "served total = the sum of its stages' medians.", "",
        "| | " + " | ".join(STAGES) + " | served total |", "|---|" + "---:|" * (len(STAGES) + 1),
        *[f"| {name} | " + " | ".join(f"{r[s]:.2f}" for s in STAGES) + f" | {sum(r[s] for s in served):.2f} |"
          for name, r in results.items()],
    ]
    write_result(args.out, lines)


if __name__ == "__main__":
    main()
