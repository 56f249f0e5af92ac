"""The daily graph's cost per day, step by step: what the replay's "under 10 minutes" is made of.

Usage (from the project root):
    .venv/bin/python benchmarks/daily_graph.py [--days 30] [--out benchmarks/results/daily_graph.md]

A scratch lake, registry and ephemeral instance get a champion on the first 90 days of 2011 (not
timed), then the daily job runs `--days` days one run each, in process, as the replay runs it; the
sensors are not ticked, so no retrain mixes in. Each run's wall time is measured around
`execute_in_process`; its steps' durations come from the instance, the rest of the run is Dagster's
bookkeeping (run creation, events). Medians over the days; run it beside a second checkout to compare
two versions side by side on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

from orchestration.host import describe
from orchestration.simulation import Simulation

FIRST_DAY, BOOTSTRAP_DAYS = date(2011, 1, 1), 90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--out", default="benchmarks/results/daily_graph")
    args = parser.parse_args()
    cutoff = FIRST_DAY + timedelta(days=BOOTSTRAP_DAYS)
    with tempfile.TemporaryDirectory() as scratch:
        sim = Simulation.fresh(Path(scratch))
        sim.bootstrap(FIRST_DAY.isoformat(), cutoff.isoformat())
        walls, steps = [], defaultdict(list)
        for i in range(args.days):
            day = (cutoff + timedelta(days=i)).isoformat()
            started = time.perf_counter()
            result = sim.run(f"daily_{sim.spec.name}", first=day)
            walls.append(time.perf_counter() - started)
            if not result.success:
                raise RuntimeError(f"daily run of {day} failed")
            for stat in sim.instance.get_run_step_stats(result.run_id):
                steps[stat.step_key].append(stat.end_time - stat.start_time)
            print(f"{day}: {walls[-1]:.2f} s", flush=True)
    step_medians = {k: statistics.median(v) for k, v in steps.items()}
    wall = statistics.median(walls)
    rows = sorted(step_medians.items(), key=lambda kv: -kv[1])
    load = os.getloadavg()
    lines = [f"# Daily graph, one day per run (`benchmarks/daily_graph.py --days {args.days}`)", "",
             f"Median wall time of one daily run: **{wall:.2f} s** over {args.days} days "
             f"({FIRST_DAY + timedelta(days=BOOTSTRAP_DAYS)} on, after a 90-day bootstrap); the full "
             f"replay's 641 days at this rate: {wall * 641 / 60:.1f} min plus sensors and retrains. "
             f"Load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {describe()}.", "",
             "| step | median s | share of the run |", "| --- | ---: | ---: |"]
    lines += [f"| {k} | {v:.3f} | {v / wall:.0%} |" for k, v in rows]
    rest = wall - sum(step_medians.values())
    lines += [f"| (run bookkeeping outside steps) | {rest:.3f} | {rest / wall:.0%} |", ""]
    out = Path(args.out)
    out.with_suffix(".md").write_text("\n".join(lines))
    out.with_suffix(".json").write_text(json.dumps({"days": args.days, "median_run_seconds": wall,
                                                    "runs": walls, "step_medians": step_medians,
                                                    "loadavg": load}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
