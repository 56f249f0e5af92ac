"""A simulated clock for the daily graph: run a day, then tick the sensors, as the daemon would.

Used by the replay command and by the tests, so both exercise the real jobs, sensors and resources,
and by `make demo` on the persistent instance: there the sensors' cursors live in the instance where
the sensor daemon of workspace.yaml's code location reads them, and sensor-launched runs carry the
daemon's run-key tags, so `make ui` continues from the demo instead of starting the sensors over.
"""

import json
import os
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
from dagster._core.storage.tags import PARTITION_NAME_TAG, RUN_KEY_TAG, SENSOR_NAME_TAG

from assets.training import model_name
from ml.retrain_policy import RetrainPolicy
from ml.usecases import BIKE_RENTALS, replay_file
from orchestration.definitions import build_use_case
from orchestration.resources import resolved
from resources.alerts import AlertSink
from resources.mlflow_tracking import CHAMPION, MlflowResource
from resources.sources import DaySource, LandingSource, ReplaySource
from ml.contract import withhold_labels
from resources.storage import LocalStorage, storage_from_url

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = ROOT / "workspace.yaml"


class DaemonCursors:
    """Sensor cursors kept in the instance, where the sensor daemon of `workspace`'s code location reads
    and writes them: the rows `dagster sensor cursor --set -w workspace.yaml` writes.

    A dict-like stand-in for the simulation's in-memory cursors. Dagster has no public API for a
    sensor's stored state (InstigatorState / SensorInstigatorData, the workspace-file loader and the
    remote origins are all in dagster._core), so every internal name stays in this class. The daemon
    finds a sensor's state by its selector (location name, repository name, sensor name), so `make ui`
    and `dg dev`, whose code server has another address each session, continue from these states.
    """

    def __init__(self, instance: dg.DagsterInstance, workspace: Path, repo: dg.RepositoryDefinition):
        from dagster._core.remote_origin import RemoteRepositoryOrigin

        self.instance, self.repo = instance, repo
        self.repository = RemoteRepositoryOrigin(code_location_origin=self.location(workspace),
                                                 repository_name=repo.name)

    @staticmethod
    def location(workspace: Path):
        """The code location origin of `workspace`, read as the daemon reads the file (no code loaded)."""
        from dagster._core.workspace.load import location_origins_from_yaml_paths

        locations = location_origins_from_yaml_paths([str(workspace)])
        if len(locations) != 1:
            raise ValueError(f"{workspace}: expected one code location, found {[o.location_name for o in locations]}")
        return locations[0]

    def _state(self, name: str):
        from dagster._core.remote_origin import RemoteInstigatorOrigin

        origin = RemoteInstigatorOrigin(repository_origin=self.repository, instigator_name=name)
        return origin, self.instance.get_instigator_state(origin.get_id(), origin.get_selector().get_id())

    def get(self, name: str, default: str | None = None) -> str | None:
        _, state = self._state(name)
        data = state.instigator_data if state else None
        return data.cursor if data and data.cursor is not None else default

    def __getitem__(self, name: str) -> str | None:
        return self.get(name)

    def __setitem__(self, name: str, cursor: str | None) -> None:
        from dagster._core.scheduler.instigation import (InstigatorState, InstigatorStatus, InstigatorType,
                                                         SensorInstigatorData)

        sensor = self.repo.get_sensor_def(name)
        origin, state = self._state(name)
        if state is None:  # created as the daemon creates it: running if the code says so, else stopped
            status = (InstigatorStatus.DECLARED_IN_CODE if sensor.default_status == dg.DefaultSensorStatus.RUNNING
                      else InstigatorStatus.STOPPED)
            data = SensorInstigatorData(min_interval=sensor.minimum_interval_seconds, cursor=cursor,
                                        sensor_type=sensor.sensor_type)
            self.instance.add_instigator_state(InstigatorState(origin, InstigatorType.SENSOR, status, data))
        else:  # the status (started or stopped in the UI) and the daemon's timestamps stay
            data = state.instigator_data or SensorInstigatorData(min_interval=sensor.minimum_interval_seconds,
                                                                 sensor_type=sensor.sensor_type)
            self.instance.update_instigator_state(state.with_data(data._replace(cursor=cursor)))

    def running(self, name: str) -> bool:
        """Whether the daemon evaluates this sensor: started in the UI, or running by default and not stopped."""
        from dagster._core.scheduler.instigation import InstigatorStatus

        _, state = self._state(name)
        by_default = self.repo.get_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
        if state is None:
            return by_default
        return (state.status == InstigatorStatus.RUNNING
                or (state.status == InstigatorStatus.DECLARED_IN_CODE and by_default))

    def reset(self) -> None:
        """Every sensor of the location starts over (a fresh lake); whether it runs stays as it was."""
        for sensor in self.repo.sensor_defs:
            if self._state(sensor.name)[1] is not None:
                self[sensor.name] = None


class Simulation:
    """Runs the real jobs and ticks the real sensors of one use case against given resources.

    `defs` (default: the use case's definitions with `resources`) is what the sensors see and the jobs
    run from; `workspace` keeps the sensors' cursors in `instance`, for that workspace's code location
    (see `in_workspace`); without it they live in memory.
    """

    def __init__(self, resources: dict, instance: dg.DagsterInstance, policy: RetrainPolicy = RetrainPolicy(),
                 spec=BIKE_RENTALS, label_delay_days: int = 0, history: ReplaySource | None = None,
                 defs: dg.Definitions | None = None, workspace: Path | None = None):
        self.spec, self.resources, self.instance, self.policy = spec, resources, instance, policy
        # With a label delay, each day's file lands without its labels in the landing folder (the
        # source), and lands again complete `label_delay_days` later; `history` holds the full files.
        self.label_delay_days, self.history = label_delay_days, history
        self.storage, self.mlflow = resolved(resources["storage"]), resources["mlflow"]
        self.defs = defs or dg.Definitions.merge(build_use_case(spec, policy),
                                                 dg.Definitions(resources=resources, executor=dg.in_process_executor))
        self.repo = self.defs.get_repository_def()
        self.cursors: dict[str, str | None] | DaemonCursors = (
            DaemonCursors(instance, workspace, self.repo) if workspace else {})
        self.run_keys: set[str] = set()  # run keys launched by this simulation (a demo's fresh lake ignores older runs)
        self.launched = 0  # runs launched for sensor requests
        self.retrains: list[dict] = []
        self.alerts: list[str] = []

    @classmethod
    def in_workspace(cls, instance: dg.DagsterInstance, spec=BIKE_RENTALS, workspace: Path = WORKSPACE) -> "Simulation":
        """The code location `make ui` loads from `workspace` (every use case, resources from the
        environment), simulating `spec`'s days on a persistent `instance`, with the sensors' cursors
        where that location's sensor daemon continues from them."""
        from orchestration import definitions

        module = DaemonCursors.location(workspace).loadable_target_origin.module_name
        if module != definitions.__name__:
            raise ValueError(f"{workspace} loads {module}, the simulation {definitions.__name__}")
        defs = definitions.defs()
        return cls(dict(defs.resources), instance, spec=spec, defs=defs, workspace=workspace)

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
        # One day is tagged as a partition, not a one-day range: Dagster records a partitioned check's
        # result against its day only in a run tagged `dagster/partition` (else the UI shows "Skipped").
        range_tags = ({} if not first else {PARTITION_NAME_TAG: first} if (last or first) == first
                      else {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last})
        return self.defs.resolve_job_def(job).execute_in_process(
            instance=self.instance, run_config=console_level(run_config), tags={**range_tags, **(tags or {})},
            raise_on_error=False)

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
        """Evaluate a sensor from its cursor and store the new one; an alert sensor's alerts are counted."""
        sensor = self.repo.get_sensor_def(sensor_name)
        before = self.cursors.get(sensor_name)
        with dg.build_sensor_context(instance=self.instance, cursor=before,
                                     resources=self.resources, repository_def=self.repo) as context:
            data = sensor.evaluate_tick(context)
        self.cursors[sensor_name] = data.cursor
        if sensor_name.endswith("_alert_sensor"):  # its cursor lists the alerts sent (build_alert_sensor)
            already = set(sent_alerts(before))
            self.alerts += [a for a in sent_alerts(data.cursor) if a not in already]
        return data

    def land(self, day: str, labels: bool) -> None:
        """Drop a day's file in the landing folder, with or without its labels."""
        raw = self.history.fetch(self.spec, day)
        content = raw.content if labels else withhold_labels(self.spec, raw.content)
        storage_from_url(self.resources["landing"].url).write_bytes(raw.name, content)

    def sensor_runs(self, sensor_name: str, job: str | None = None, day: str | None = None) -> None:
        """Tick a sensor and launch what it requests, as the daemon would: a run key once, one partition
        per run, in the request's job, else `job`, else the sensor's; the use case's retrains through
        `retrain` (on `day`, else the day the request names), so they are recorded."""
        sensor = self.repo.get_sensor_def(sensor_name)
        for request in self.tick(sensor_name).run_requests:
            if request.run_key in self.run_keys:  # the daemon launches a run key once
                continue
            if request.run_key:
                self.run_keys.add(request.run_key)
            self.launched += 1
            tags = {**{k: v for k, v in request.tags.items() if k != PARTITION_NAME_TAG},  # run() tags the day
                    SENSOR_NAME_TAG: sensor_name, **({RUN_KEY_TAG: request.run_key} if request.run_key else {})}
            if sensor_name == f"{self.spec.name}_retrain_sensor":
                cutoff = request.run_config["ops"][self.spec.asset("training_set")]["config"]["cutoff"]
                self.retrain(day or request.tags["retrain/day"], cutoff, request.tags["retrain/reason"], tags)
            else:
                self.run(request.job_name or job or sensor.job_name, first=request.partition_key,
                         run_config=request.run_config or None, tags=tags)

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
        self.sensor_runs(f"{name}_retrain_sensor", day=day)
        self.tick(f"{name}_alert_sensor")
        return ok

    def summary(self, day: str, retrains_before: int) -> str:
        """The day in one line: rows scored, the serving version, the drift verdict, the estimated and
        realized MAE, and what the sensors did (retrains since `retrains_before`)."""
        name, storage = self.spec.name, self.storage
        drift_key, perf_key = f"{name}/drift/{day}.json", f"{name}/performance/{day}.json"
        if not storage.exists(drift_key):
            return f"{day}  FAILED: no drift report (see the daily run's failure)"
        drift = storage.read_json(drift_key)
        rows = storage.read_parquet(f"{name}/predictions/{day}.parquet").height
        realized = f"{storage.read_json(perf_key)['mae']:6.1f}" if storage.exists(perf_key) else "  (late)"
        action = "; ".join(f"retrain ({r['reason']}) -> {'promoted v' + str(r['champion_after']) if r['promoted'] else 'refused'}"
                           for r in self.retrains[retrains_before:]) or "-"
        verdict = "DRIFT " + ",".join(drift["drifted_features"]) if drift["drifted"] else "no drift"
        return (f"{day}  {rows:>4} rows  v{drift['model_version']:>3}  {verdict:<28}  est MAE {drift['estimated_mae']:6.1f} "
                f"[{drift['estimated_low']:.0f}, {drift['estimated_high']:.0f}]  realized {realized}  {action}")

    def live(self, days: list[str], progress=lambda line: print(line, flush=True)) -> list[str]:
        """Live `days` one by one, reporting each as one line with elapsed time and ETA; returns the
        days whose daily run failed."""
        failed, started = [], time.perf_counter()
        for i, d in enumerate(days, 1):
            before = len(self.retrains)
            if not self.day(d):
                failed.append(d)
            elapsed = time.perf_counter() - started
            progress(f"[{i}/{len(days)} {elapsed / 60:5.1f} min, ETA {elapsed / i * (len(days) - i) / 60:5.1f} min] "
                     + self.summary(d, before))
        return failed

    def running(self, sensor: dg.SensorDefinition) -> bool:
        """Whether the daemon would evaluate the sensor (its stored status, else its default)."""
        if isinstance(self.cursors, DaemonCursors):
            return self.cursors.running(sensor.name)
        return sensor.default_status == dg.DefaultSensorStatus.RUNNING

    def settle(self, max_rounds: int = 5) -> int:
        """Tick every sensor the daemon would evaluate, every use case's, and launch what they request, until a round launches no run and sends no alert:
        the daemon, continuing from these cursors, then has nothing to do. Returns the rounds ticked."""
        for rounds in range(1, max_rounds + 1):
            launched, alerts = self.launched, len(self.alerts)
            for sensor in self.repo.sensor_defs:
                if self.running(sensor):
                    self.sensor_runs(sensor.name)
            if (self.launched, len(self.alerts)) == (launched, alerts):
                return rounds
        raise RuntimeError(f"sensors still launching runs or sending alerts after {max_rounds} rounds")

    def bootstrap(self, first: str, cutoff: str) -> None:
        """Ingest the days before `cutoff` in one run and train the first champion on them."""
        last = (date.fromisoformat(cutoff) - timedelta(days=1)).isoformat()
        if self.label_delay_days:  # history before the first champion has long had its labels
            for d in pl.date_range(date.fromisoformat(first), date.fromisoformat(last), eager=True):
                self.land(d.isoformat(), labels=True)
            # ingested by the one run below, so the sensor's requests for them are spent
            self.run_keys |= {r.run_key for r in self.tick(f"{self.spec.name}_landing_sensor").run_requests}
        print(f"bootstrap: ingesting {first}..{last} and training the first champion on it", flush=True)
        self.run(f"ingest_{self.spec.name}", first=first, last=last)
        self.retrain(first, cutoff, f"bootstrap on {first}..{last}")
        print(f"bootstrap: {'champion v' + self.champion() if self.retrains[-1]['promoted'] else 'no champion (refused)'}",
              flush=True)


def console_level(run_config: dict | None) -> dict:
    """`run_config` with the console logger at DAGSTER_CONSOLE_LOG_LEVEL (default WARNING): a simulated
    day runs a dozen steps, and Dagster's DEBUG event stream (~100 lines a day) would bury the one line
    of progress the demo and the replay print. The events are stored in the instance either way."""
    level = os.getenv("DAGSTER_CONSOLE_LOG_LEVEL", "WARNING").upper()
    return {**(run_config or {}), "loggers": {"console": {"config": {"log_level": level}}}}


def sent_alerts(cursor: str | None) -> list[str]:
    """The keys of the alerts an alert sensor has sent, from its cursor."""
    return json.loads(cursor)["sent"] if cursor else []


