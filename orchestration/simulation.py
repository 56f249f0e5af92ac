"""A simulated clock for the daily graph: run a day, then tick the sensors, as the daemon would.

Used by the replay command and by the tests, so both exercise the real jobs, sensors and resources.
"""

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl

from assets.training import model_name
from ml.retrain_policy import RetrainPolicy
from ml.usecases import BIKE_RENTALS, replay_file
from orchestration.definitions import build_use_case
from resources.alerts import AlertSink
from resources.mlflow_tracking import CHAMPION, MlflowResource
from resources.sources import DaySource, LandingSource, ReplaySource
from ml.contract import withhold_labels
from resources.storage import LocalStorage, storage_from_url

ROOT = Path(__file__).resolve().parents[1]


class Simulation:
    """Runs the real jobs and ticks the real sensors of one use case against given resources."""

    def __init__(self, resources: dict, instance: dg.DagsterInstance, policy: RetrainPolicy = RetrainPolicy(),
                 spec=BIKE_RENTALS, label_delay_days: int = 0, history: ReplaySource | None = None):
        self.spec, self.resources, self.instance, self.policy = spec, resources, instance, policy
        # With a label delay, each day's file lands without its labels in the landing folder (the
        # source), and lands again complete `label_delay_days` later; `history` holds the full files.
        self.label_delay_days, self.history = label_delay_days, history
        self.storage, self.mlflow = resources["storage"], resources["mlflow"]
        self.defs = dg.Definitions.merge(build_use_case(spec, policy),
                                         dg.Definitions(resources=resources, executor=dg.in_process_executor))
        self.repo = self.defs.get_repository_def()
        self.cursors: dict[str, str | None] = {}
        self.run_keys: set[str] = set()
        self.retrains: list[dict] = []
        self.alerts: list[str] = []

    @classmethod
    def fresh(cls, root: Path, policy: RetrainPolicy = RetrainPolicy(), source: DaySource | None = None,
              spec=BIKE_RENTALS, label_delay_days: int = 0) -> "Simulation":
        """A new lake, MLflow store and ephemeral instance under `root`; the source defaults to the replay
        (with a label delay: the landing folder, fed from the replay by `day`)."""
        if root.exists():
            shutil.rmtree(root)
        replay = ReplaySource(csv_path=str(ROOT / replay_file(spec)))
        landing = LandingSource(url=str(root / "landing"))
        if label_delay_days:
            source = landing
        resources = {
            "storage": LocalStorage(root=str(root / "lake")),
            "source": source or replay,
            "landing": landing,
            "mlflow": MlflowResource(tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_root=str(root / "artifacts")),
            "alert_sink": AlertSink(kind="log"),
        }
        return cls(resources, dg.DagsterInstance.ephemeral(), policy, spec, label_delay_days, replay)

    def run(self, job: str, first: str | None = None, last: str | None = None, run_config=None, tags=None):
        range_tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last or first} if first else {}
        return self.defs.resolve_job_def(job).execute_in_process(
            instance=self.instance, run_config=run_config, tags={**range_tags, **(tags or {})}, raise_on_error=False)

    def champion(self) -> str | None:
        v = self.mlflow.version_by_alias(model_name(self.spec), CHAMPION)
        return v.version if v else None

    def retrain(self, day: str, cutoff: str, reason: str, tags: dict | None = None) -> None:
        before = self.champion()
        result = self.run(f"retrain_{self.spec.name}", run_config={"ops": {self.spec.asset("training_set"): {"config": {"cutoff": cutoff}}}},
                          tags=tags)
        after = self.champion()
        self.retrains.append({"day": day, "cutoff": cutoff, "reason": reason, "champion_before": before,
                              "champion_after": after, "promoted": after != before, "run_ok": result.success})

    def tick(self, sensor_name: str):
        sensor = self.repo.get_sensor_def(sensor_name)
        with dg.build_sensor_context(instance=self.instance, cursor=self.cursors.get(sensor_name),
                                     resources=self.resources, repository_def=self.repo) as context:
            data = sensor.evaluate_tick(context)
        self.cursors[sensor_name] = data.cursor
        return data

    def land(self, day: str, labels: bool) -> None:
        """Drop a day's file in the landing folder, with or without its labels."""
        raw = self.history.fetch(self.spec, day)
        content = raw.content if labels else withhold_labels(self.spec, raw.content)
        storage_from_url(self.resources["landing"].url).write_bytes(raw.name, content)

    def sensor_runs(self, sensor_name: str, job: str) -> None:
        """Tick a sensor and run what it requests (in `job` unless the request names its own), one
        partition per run, as the daemon would."""
        for request in self.tick(sensor_name).run_requests:
            if request.run_key not in self.run_keys:  # the daemon launches a run key once
                self.run_keys.add(request.run_key)
                tags = {k: v for k, v in request.tags.items() if k != "dagster/partition"}  # run() sets the range
                self.run(request.job_name or job, first=request.partition_key, tags=tags)

    def day(self, day: str) -> bool:
        name = self.spec.name
        if self.label_delay_days:
            self.land(day, labels=False)
        ok = self.run(f"daily_{name}", first=day).success
        if self.label_delay_days:
            late = (date.fromisoformat(day) - timedelta(days=self.label_delay_days)).isoformat()
            if late >= self.spec.partition_start.isoformat():
                self.land(late, labels=True)
                self.sensor_runs(f"{name}_landing_sensor", f"ingest_{name}")
        self.sensor_runs(f"{name}_labels_sensor", f"performance_{name}")
        for request in self.tick(f"{self.spec.name}_retrain_sensor").run_requests:
            cutoff = request.run_config["ops"][self.spec.asset("training_set")]["config"]["cutoff"]
            self.retrain(day, cutoff, request.tags["retrain/reason"], request.tags)
        before = len(json.loads(self.cursors.get(f"{self.spec.name}_alert_sensor") or '{"sent": []}')["sent"])
        self.tick(f"{self.spec.name}_alert_sensor")
        sent = json.loads(self.cursors[f"{self.spec.name}_alert_sensor"] or '{"sent": []}')["sent"]
        self.alerts += sent[before:]
        return ok

    def bootstrap(self, first: str, cutoff: str) -> None:
        """Ingest the days before `cutoff` in one run and train the first champion on them."""
        last = (date.fromisoformat(cutoff) - timedelta(days=1)).isoformat()
        if self.label_delay_days:  # history before the first champion has long had its labels
            for d in pl.date_range(date.fromisoformat(first), date.fromisoformat(last), eager=True):
                self.land(d.isoformat(), labels=True)
            # ingested by the one run below, so the sensor's requests for them are spent
            self.run_keys |= {r.run_key for r in self.tick(f"{self.spec.name}_landing_sensor").run_requests}
        self.run(f"ingest_{self.spec.name}", first=first, last=last)
        self.retrain(first, cutoff, f"bootstrap on {first}..{last}")


