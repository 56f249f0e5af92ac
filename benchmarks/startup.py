"""Start-up cost: importing the definitions, and one day of the daily assets from the `dagster` CLI.

Usage (from the project root):
    .venv/bin/python benchmarks/startup.py [--runs 5] [--out benchmarks/results/startup.md]

1. `import orchestration.definitions` in a fresh interpreter, `--runs` times (median), and one
   `-X importtime` run for the breakdown by top-level package.
2. A scratch lake, registry and instance get a champion (90 days ingested, one retrain: not timed);
   then `dagster job execute -j daily_rentals` runs one day per process, `--runs` days, each timed
   from the shell; the run's step durations come from its instance, the rest is process start,
   imports and run bookkeeping.
Targets (issue "What a Dagster and MLflow user expects to see"): import <= 3 s, one day <= 12 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT = "import orchestration.definitions"
FIRST_DAY, BOOTSTRAP_DAYS = date(2011, 1, 1), 90


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return elapsed, done


def import_breakdown() -> list[tuple[str, float]]:
    """Cumulative import seconds per top-level package, largest first, from `-X importtime`."""
    _, done = timed([sys.executable, "-X", "importtime", "-c", IMPORT])
    packages: dict[str, float] = defaultdict(float)
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split("|"))
        if cumulative.isdigit() and name == name.lstrip() and "." not in name:  # a top-level import
            packages[name] += int(cumulative) / 1e6
    return sorted(packages.items(), key=lambda kv: -kv[1])


def prepare(root: Path) -> None:
    """A champion on the first 90 days, in a child process (the simulation's own stores)."""
    code = ("import sys; from pathlib import Path; from orchestration.simulation import Simulation; "
            f"sim = Simulation.fresh(Path({str(root)!r})); "
            f"sim.bootstrap({FIRST_DAY.isoformat()!r}, {(FIRST_DAY + timedelta(days=BOOTSTRAP_DAYS)).isoformat()!r}); "
            "sys.exit(0 if sim.retrains[0]['promoted'] else 1)")
    timed([sys.executable, "-c", code])


def step_seconds(home: Path) -> list[dict[str, float]]:
    """Per run, oldest first: step key -> seconds, from the instance the CLI runs wrote."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = sorted(instance.get_runs(dg.RunsFilter(job_name="daily_rentals")), key=lambda r: r.run_id)
        stats = {r.run_id: instance.get_run_step_stats(r.run_id) for r in runs}
        records = {r.run_id: instance.get_run_record_by_id(r.run_id).create_timestamp for r in runs}
    ordered = sorted(stats, key=lambda run_id: records[run_id])
    return [{s.step_key: s.end_time - s.start_time for s in stats[run_id] if s.end_time} for run_id in ordered]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/startup.md")
    args = parser.parse_args()
    load = os.getloadavg()

    imports = [timed([sys.executable, "-c", IMPORT])[0] for _ in range(args.runs)]
    breakdown = import_breakdown()

    with tempfile.TemporaryDirectory() as tmp:
        root, home = Path(tmp) / "sim", Path(tmp) / "dagster_home"
        home.mkdir()
        prepare(root)
        env = {**os.environ, "DAGSTER_HOME": str(home), "LAKE_ROOT": str(root / "lake"),
               "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db", "MLFLOW_ARTIFACT_ROOT": str(root / "artifacts"),
               "RENTALS_SOURCE": "replay"}
        days = [(FIRST_DAY + timedelta(days=BOOTSTRAP_DAYS + i)).isoformat() for i in range(args.runs)]
        cli = []
        for day in days:
            tags = json.dumps({"dagster/asset_partition_range_start": day, "dagster/asset_partition_range_end": day})
            cli.append(timed([str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m",
                              "orchestration.definitions", "-j", "daily_rentals", "--tags", tags], env)[0])
        steps = step_seconds(home)

    per_step = {key: statistics.median(run.get(key, 0.0) for run in steps) for key in steps[0]}
    in_steps = statistics.median(sum(run.values()) for run in steps)
    day_s, import_s = statistics.median(cli), statistics.median(imports)
    lines = [
        "# Start-up: importing the definitions and one day from the CLI", "",
        f"Command: `.venv/bin/python benchmarks/startup.py --runs {args.runs}`  ",
        f"Machine: {os.cpu_count()} cores; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at start; "
        f"{time.strftime('%Y-%m-%d %H:%M')}", "",
        "| measure | median | runs | target |", "|---|---:|---|---:|",
        f"| `{IMPORT}` | {import_s:.2f} s | {', '.join(f'{t:.2f}' for t in imports)} | 3 s "
        f"({'met' if import_s <= 3 else 'missed'}) |",
        f"| `dagster job execute -j daily_rentals`, one day | {day_s:.2f} s | {', '.join(f'{t:.1f}' for t in cli)} | "
        f"12 s ({'met' if day_s <= 12 else 'missed'}) |", "",
        "## Import breakdown (one `-X importtime` run, cumulative seconds per top-level package)", "",
        "| package | s |", "|---|---:|",
        *[f"| {name} | {seconds:.2f} |" for name, seconds in breakdown[:12]], "",
        f"## One CLI day: where the {day_s:.1f} s go (medians over {len(steps)} runs)", "",
        f"Steps took {in_steps:.2f} s in all; the other {day_s - in_steps:.2f} s are the process (interpreter, "
        "imports, loading the code location), run bookkeeping in the instance and the executor.", "",
        "| step | s |", "|---|---:|",
        *[f"| {key} | {seconds:.2f} |" for key, seconds in sorted(per_step.items(), key=lambda kv: -kv[1])],
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
