"""`make demo`: the lifecycle on the embedded default (SQLite Dagster instance, local lake, local MLflow).

Ingests the first 90 days of 2011 and trains the first champion through the gate, then lives
through the next days one by one — ingest, features, scoring (champion, challenger in shadow),
drift, performance — ticking the retraining and alert sensors after each day, as the daemon would.
Everything lands in DAGSTER_HOME and var/, so `make ui` shows the assets, checks, runs and lineage.

The sensors are those of workspace.yaml's code location, ticked through the instance: their cursors
are stored where the sensor daemon reads them and the runs they launch carry the daemon's run-key
tags. Before handing over, every sensor the daemon runs (the other use cases' too) is ticked until
none launches a run or sends an alert, so `make ui`'s daemon continues from there: no retrain
relaunched, no alert sent twice.
"""

import os
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from orchestration.simulation import Simulation

FIRST_DAY = date.fromisoformat(os.getenv("DEMO_FIRST_DAY", "2011-01-01"))
LIVE_DAYS = int(os.getenv("DEMO_LIVE_DAYS", "60"))
BOOTSTRAP_DAYS = 90


def fresh_stores() -> None:
    """A fresh local lake and registry; run history stays in DAGSTER_HOME. A lake in S3 or a registry
    named by MLFLOW_TRACKING_URI is not wiped."""
    if not os.getenv("LAKE_S3_BUCKET"):
        shutil.rmtree(os.getenv("LAKE_ROOT", "var/lake"), ignore_errors=True)
    if not os.getenv("MLFLOW_TRACKING_URI"):
        shutil.rmtree("var/mlflow", ignore_errors=True)
        Path("var/mlflow").mkdir(parents=True)


def live(instance: dg.DagsterInstance, first_day: date = FIRST_DAY,
         live_days: int = LIVE_DAYS) -> tuple[Simulation, list[str] | None]:
    """Bootstrap a champion on `BOOTSTRAP_DAYS` days from `first_day`, live `live_days` days, then settle
    the sensors. Returns the simulation and the days whose daily run failed (None: no champion)."""
    fresh_stores()
    cutoff = first_day + timedelta(days=BOOTSTRAP_DAYS)
    sim = Simulation.in_workspace(instance)
    sim.cursors.reset()  # a fresh lake: the sensors start over (their stored cursors describe the old one)
    sim.bootstrap(first_day.isoformat(), cutoff.isoformat())
    if not sim.retrains[0]["promoted"]:
        return sim, None
    failed = sim.live([(cutoff + timedelta(days=i)).isoformat() for i in range(live_days)])
    sim.settle()
    return sim, failed


def main() -> int:
    with dg.DagsterInstance.get() as instance:
        sim, failed = live(instance)
    if failed is None:
        print("bootstrap training did not produce a champion", file=sys.stderr)
        return 1
    cutoff = FIRST_DAY + timedelta(days=BOOTSTRAP_DAYS)
    print(f"\nchampion trained on {FIRST_DAY}..{cutoff - timedelta(days=1)}; lived {LIVE_DAYS} days from {cutoff}")
    for r in sim.retrains[1:]:
        print(f"  retrain on {r['day']}: {r['reason']} -> {'promoted v' + str(r['champion_after']) if r['promoted'] else 'refused by the gate'}")
    print(f"  alerts sent: {len(sim.alerts)}; failed daily runs: {len(failed)}")
    print("sensor cursors are in DAGSTER_HOME: open the UI with `make ui`, its daemon continues from them")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
