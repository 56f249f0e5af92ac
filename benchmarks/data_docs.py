"""Benchmark: what rendering the GX suite's Data Docs adds to a day's ingestion run.

    .venv/bin/python benchmarks/data_docs.py [--runs 5]

One real day (2011-06-01) through the `ingest_rentals` job in process — raw, validated + quarantined,
features and their checks, the row contract (GX suite) among them — with the Data Docs page written
and with `checks.data_docs.publish` replaced by a no-op. Two settings, each timed `--runs` times:
*warm* (one process, the day run again and again, as the replay and the demo run days) and *first run
of a process* (a fresh process per run, definitions imported before the clock starts: a run launched
by the daemon). The cost is the time spent in `publish` over the rest of the same run. Results go to
benchmarks/results/data_docs.md (`--out`).
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DAY = "2011-06-01"


def run_day(lake: str, docs: bool) -> dict:
    """One ingestion run of DAY into `lake`: its seconds, and the seconds spent publishing the Data Docs
    (with `docs`; else `publish` is a no-op)."""
    import dagster as dg

    import checks.data_docs
    from ml.usecases import BIKE_RENTALS
    from orchestration.definitions import build_use_case
    from resources.alerts import AlertSink
    from resources.mlflow_tracking import MlflowResource
    from resources.sources import ReplaySource
    from resources.storage import LocalStorage

    resources = {"storage": LocalStorage(root=lake), "source": ReplaySource(csv_path=str(ROOT / "data/bike_sharing_hourly.csv")),
                 "mlflow": MlflowResource(tracking_uri=f"sqlite:///{lake}/unused.db"), "alert_sink": AlertSink()}
    job = dg.Definitions.merge(build_use_case(BIKE_RENTALS), dg.Definitions(resources=resources, executor=dg.in_process_executor)
                               ).resolve_job_def("ingest_rentals")
    real, spent = checks.data_docs.publish, []

    def timed(*args):
        started = time.perf_counter()
        key = real(*args) if docs else "rentals/data_docs/off/index.html"
        spent.append(time.perf_counter() - started)
        return key

    checks.data_docs.publish = timed
    try:
        started = time.perf_counter()
        result = job.execute_in_process(partition_key=DAY, instance=dg.DagsterInstance.ephemeral(),
                                        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        seconds = time.perf_counter() - started
    finally:
        checks.data_docs.publish = real
    assert result.success and len(spent) == 1
    return {"seconds": seconds, "publish": spent[0] if docs else 0.0}


def warm(runs: int) -> dict:
    """Alternated runs in one process, so the machine's load falls on both settings alike."""
    with tempfile.TemporaryDirectory() as lake:
        run_day(lake, True)  # imports, GX, the page view's templates
        return {"runs": [run_day(lake, docs) for _ in range(runs) for docs in (True, False)]}


def first_run(docs: bool) -> dict:
    import orchestration.definitions  # noqa: F401  imported before the clock, as a code server has it

    with tempfile.TemporaryDirectory() as lake:
        return run_day(lake, docs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/data_docs.md")
    parser.add_argument("--child", choices=["warm", "with", "without"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(warm(args.runs) if args.child == "warm" else first_run(args.child == "with")))
        return

    def child(kind: str):
        out = subprocess.run([sys.executable, __file__, "--child", kind, "--runs", str(args.runs)],
                             capture_output=True, text=True, cwd=ROOT)
        if out.returncode:
            sys.exit(f"measuring process failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    alternated = child("warm")["runs"]
    samples = {"warm": {"with": alternated[0::2], "without": alternated[1::2]},
               "first run": {"with": [], "without": []}}
    for _ in range(args.runs):
        for kind in ("with", "without"):
            samples["first run"][kind].append(child(kind))
    rows, share = [], {}
    for setting, kinds in samples.items():
        for kind, runs in kinds.items():
            seconds = [r["seconds"] for r in runs]
            rows.append(f"| {setting}, {kind} Data Docs | {statistics.median(seconds):.3f} | "
                        f"{', '.join(f'{x:.3f}' for x in seconds)} |")
        publish = [r["publish"] for r in kinds["with"]]
        share[setting] = statistics.median(r["publish"] / (r["seconds"] - r["publish"]) for r in kinds["with"])
        rows.append(f"| {setting}, `publish` inside the run | {statistics.median(publish):.3f} | "
                    f"{', '.join(f'{x:.3f}' for x in publish)} |")
    load = Path("/proc/loadavg").read_text().split()[0]
    lines = [
        "# Data Docs on the daily path",
        "",
        f"Command: `.venv/bin/python benchmarks/data_docs.py --runs {args.runs}`  ",
        f"Machine: {platform.machine()}, {platform.python_version()}, 2 cores shared; {time.strftime('%Y-%m-%d')}, "
        f"load average {load} at the end",
        "",
        f"One real day ({DAY}, 24 rows) through `ingest_rentals` in process (raw, validated + quarantined, "
        "features and their checks), with the row contract's Data Docs page and the site index written to "
        "the lake, and without (`publish` a no-op). *warm*: one process running the day again and again "
        "(the replay, the demo), alternating both settings; *first run*: a fresh process per run with the "
        "definitions imported before the clock starts (a run the daemon launches: GX's page templates are "
        "compiled in it).",
        "",
        "| setting | median s | runs (s) |",
        "| --- | ---: | --- |",
        *rows,
        "",
        "The totals move by more than the page costs on this shared machine, so the cost is read from the time "
        "spent in `publish` over the rest of the same run (median): "
        f"**{share['warm']:+.1%}** warm, **{share['first run']:+.1%}** on the first run of a process.  ",
        f"Target: at most +10% ({'met' if max(share.values()) <= 0.10 else 'MISSED'}).",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
