"""A run SIGKILLed inside each stage, then rerun, ends exactly where an uninterrupted run ends.

Every run under test is a real `dagster job execute` subprocess on its own DAGSTER_HOME, lake and
MLflow (SQLite) store under tmp. The kill is placed by a failpoint (resources/failpoints.py,
`ML_FAILPOINT`): inside a lake write (temporary file written and synced, not yet renamed) for the
storage stages, before the version is registered for training, and between the evidence tags and the
alias move for registration (`challenger`) and promotion (`champion`). The process SIGKILLs itself
there: no exception handler, `finally` or atexit runs, as with an OOM kill or a lost machine.

After each kill: the half-written object is not under its key (nor listed; the rerun's next write in
its folder removes it, its writer being gone), the registry has no alias on a version without its evidence, the rerun succeeds, and the lake's tables and the registry's
decisions (versions and their tags, aliases, metrics, gate evidence, reference statistics, drift and
performance reports) equal those of one uninterrupted run, done once for the module; run ids,
timestamps and measured latencies aside.

The scenario: 90 days of 2011 ingested in process (not under test), then `retrain_rentals` with
cut-off 2011-04-01 (the first champion through the gate), then `daily_rentals` on 2011-04-01..03
(ingest, features, scoring, drift, performance). Each kill is in the middle day (or the one
retrain), so the test also sees the day before it complete and the day after it never started.
"""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.training import model_name
from ml.usecases import BIKE_RENTALS
from resources.sources import ReplaySource
from resources.storage import LocalStorage
from tests.dagster.helpers import materialize_days

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "bike_sharing_hourly.csv"
CUTOFF, DAYS = "2011-04-01", ("2011-04-01", "2011-04-02", "2011-04-03")
KILLED_DAY = DAYS[1]
MODEL = model_name(BIKE_RENTALS)
# What differs between two runs of the same work: ids of runs, times, and measured latency.
VOLATILE = {"evaluated_at", "dagster_run_id", "retrain", "run_id", "challenger.run", "champion.promoted_at",
            "champion.dagster_run_id", "latency_ms_per_1k"}
MLFLOW_RUN = re.compile(r"runs:/[0-9a-f]{32}")  # an MLflow run id in a `runs:/` URI
# Variables of the calling environment that would point a run elsewhere (S3 lake, another store...).
FOREIGN = ("LAKE_", "AWS_", "DAGSTER_", "MLFLOW_", "ML_FAILPOINT", "RENTALS_", "SEOUL_", "LANDING_", "ALERT_", "GIT_COMMIT")


def run_job(root: Path, job: str, *, failpoint: str | None = None, config: dict | None = None,
            days: tuple[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`dagster job execute` of the code location as deployed, on `root`'s lake, MLflow store and instance."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    env.update(DAGSTER_HOME=str(root / "home"), LAKE_ROOT=str(root / "lake"),
               MLFLOW_TRACKING_URI=f"sqlite:///{root}/mlflow.db", MLFLOW_ARTIFACT_ROOT=str(root / "artifacts"),
               RENTALS_REPLAY_CSV=str(DATA), GIT_COMMIT="kill-tests", PYTHONPATH=str(ROOT))
    if failpoint:
        env["ML_FAILPOINT"] = failpoint
    (root / "home").mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "dagster", "job", "execute", "-m", "orchestration.definitions", "-j", job]
    if config:
        (root / "run_config.json").write_text(json.dumps(config))
        cmd += ["-c", str(root / "run_config.json")]
    if days:
        cmd += ["--tags", json.dumps({"dagster/asset_partition_range_start": days[0],
                                      "dagster/asset_partition_range_end": days[1]})]
    log = root / f"{job}-{len(list(root.glob('*.log')))}.log"
    with log.open("w") as out:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    proc.log = log.read_text()
    return proc


def retrain(root: Path, failpoint: str | None = None) -> subprocess.CompletedProcess:
    return run_job(root, "retrain_rentals", failpoint=failpoint,
                   config={"ops": {"rental_training_set": {"config": {"cutoff": CUTOFF}}}})


def daily(root: Path, failpoint: str | None = None) -> subprocess.CompletedProcess:
    return run_job(root, "daily_rentals", failpoint=failpoint, days=(DAYS[0], DAYS[-1]))


def succeeded(proc: subprocess.CompletedProcess) -> bool:
    return proc.returncode == 0 and "RUN_SUCCESS" in proc.log and "STEP_FAILURE" not in proc.log


def killed(proc: subprocess.CompletedProcess) -> bool:
    return proc.returncode == -signal.SIGKILL and "RUN_SUCCESS" not in proc.log and "RUN_FAILURE" not in proc.log


def tail(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n{proc.log[-4000:]}"


def copy(src: Path, dst: Path) -> Path:
    """A lake (and MLflow store) to run on; not the Dagster instance, runs' logs or MLflow artifacts (the
    copied store names its artifacts by absolute path, so they are read where `src` has them)."""
    return shutil.copytree(src, dst, ignore=shutil.ignore_patterns("home", "*.log", "artifacts", "run_config.json"))


# --- what is compared -------------------------------------------------------------------------------


def normalized(value, root: Path):
    """JSON-like `value` without what differs between runs: volatile keys dropped, `root` replaced,
    floats to 12 significant digits."""
    if isinstance(value, dict):
        if value.get("rule") == "latency_ms_per_1k":  # the gate rule's measurement, not its outcome
            return {"rule": value["rule"], "passed": value["passed"]}
        return {k: normalized(v, root) for k, v in value.items() if k not in VOLATILE and not k.endswith("run_id")}
    if isinstance(value, list):
        return [normalized(v, root) for v in value]
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else float(f"{value:.12g}")  # NaN != NaN, yet the same result
    if isinstance(value, str):
        value = value.replace(str(root.resolve()), "<root>").replace(str(root), "<root>")
        return MLFLOW_RUN.sub("runs:/<run>", value)
    return value


def temp_files(root: Path) -> list[str]:
    """Temporary files a killed write left (`.<name>.<random>.tmp`, never renamed)."""
    lake = root / "lake"
    return sorted(p.relative_to(lake).as_posix() for p in lake.rglob(".*.tmp"))


def lake_state(root: Path) -> dict:
    """Every object of the lake (temporary files aside; retrain hand-over records are keyed by run id)."""
    lake, state = root / "lake", {}
    for path in sorted(lake.rglob("*")):
        key = path.relative_to(lake).as_posix()
        if not path.is_file() or path.name.startswith(".") or "/retrains/" in f"/{key}":
            continue
        if path.suffix == ".parquet":
            state[key] = pl.read_parquet(path)
        elif path.suffix == ".json":
            state[key] = normalized(json.loads(path.read_text()), root)
        elif "/data_docs/" in key:  # a rendering that shows when it was validated: its presence is compared
            state[key] = "page"
        else:
            state[key] = path.read_bytes()
    return state


def assert_same_lake(root: Path, expected: Path) -> None:
    got, want = lake_state(root), lake_state(expected)
    assert sorted(got) == sorted(want), (sorted(set(got) - set(want)), sorted(set(want) - set(got)))
    differ = [k for k in want if not (got[k].equals(want[k]) if isinstance(want[k], pl.DataFrame) else got[k] == want[k])]
    assert not differ, f"{len(differ)} object(s) differ from the uninterrupted run's: {differ[:10]}"


def registry(root: Path) -> dict:
    """The decisions in the registry: versions with their tags, status and metrics; aliases."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(f"sqlite:///{root}/mlflow.db", f"sqlite:///{root}/mlflow.db")
    try:
        aliases = {alias: str(v) for alias, v in client.get_registered_model(MODEL).aliases.items()}
    except MlflowException:
        return {"versions": {}, "aliases": {}}
    versions = {}
    for mv in client.search_model_versions(f"name = '{MODEL}'"):
        run = client.get_run(mv.run_id)
        versions[str(mv.version)] = normalized({"tags": dict(mv.tags), "status": mv.status, "params": run.data.params,
                                                "metrics": run.data.metrics}, root)
    return {"versions": versions, "aliases": aliases}


def mlflow_runs(root: Path) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    experiment = client.get_experiment_by_name(BIKE_RENTALS.name)
    return client.search_runs([experiment.experiment_id]) if experiment else []


# --- the uninterrupted run --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> dict[str, Path]:
    """`prepared`: 90 days ingested, no model; `trained`: then retrained (uninterrupted, subprocess);
    `final`: then the three days run (uninterrupted, subprocess)."""
    base = tmp_path_factory.mktemp("kill_stages")
    prepared = base / "prepared"
    result = materialize_days(BIKE_RENTALS, {"storage": LocalStorage(root=str(prepared / "lake")),
                                             "source": ReplaySource(csv_path=str(DATA))},
                              "2011-01-01", "2011-03-31", selection=dg.AssetSelection.assets(
                                  "raw_rentals", "validated_rentals", "quarantined_rentals", "rental_features"))
    assert result.success
    trained = copy(prepared, base / "trained")
    proc = retrain(trained)
    assert succeeded(proc), tail(proc)
    final = copy(trained, base / "final")
    proc = daily(final)
    assert succeeded(proc), tail(proc)
    assert registry(trained)["aliases"] == {"champion": "1"}  # the first model passed the gate
    assert not temp_files(final)
    return {"prepared": prepared, "trained": trained, "final": final}


# --- storage stages of the daily run ----------------------------------------------------------------

STORAGE_STAGES = {
    # stage: the object whose write is killed (the first write under this prefix)
    "raw_write": f"rentals/raw/{KILLED_DAY}/",  # the content-addressed blob; its pointer comes after
    "split": f"rentals/validated/{KILLED_DAY}.parquet",
    "features": f"rentals/features/{KILLED_DAY}.parquet",
    "scoring": f"rentals/predictions/{KILLED_DAY}.parquet",
    "drift": f"rentals/drift/{KILLED_DAY}.json",
}


@pytest.mark.parametrize("stage", list(STORAGE_STAGES))
def test_a_daily_run_killed_inside_a_write_reruns_to_the_uninterrupted_result(stage, baseline, tmp_path):
    target = STORAGE_STAGES[stage]
    root = copy(baseline["trained"], tmp_path / "run")
    storage = LocalStorage(root=str(root / "lake"))

    proc = daily(root, failpoint=f"after_temp_write:{target}")
    assert killed(proc), tail(proc)

    # The write was cut between its temporary file and the rename: the temporary file is there, under
    # a name no reader lists, and the object is not under its key.
    folder = target.rstrip("/").rsplit("/", 1)[0] if not target.endswith("/") else target.rstrip("/")
    leftover = temp_files(root)
    assert len(leftover) == 1 and leftover[0].startswith(folder + "/."), leftover
    if target.endswith("/"):  # a new raw day: neither the blob nor the pointer to it
        assert storage.list_keys(target) == []
    else:
        assert not storage.exists(target)
    assert not any(Path(k).name.startswith(".") for k in storage.list_keys(folder + "/"))
    # It died inside the stage: the day before was written in full, the day after never started.
    before, after = (target.replace(KILLED_DAY, d) for d in (DAYS[0], DAYS[2]))
    assert storage.list_keys(before) if before.endswith("/") else storage.exists(before)
    assert not storage.list_keys(after.rstrip("/"))

    proc = daily(root)
    assert succeeded(proc), tail(proc)
    assert_same_lake(root, baseline["final"])
    # Never read (the tables equal the baseline's), and removed by the rerun's write beside it: its writer is gone.
    assert temp_files(root) == []


# --- the retrain: training, registration, promotion -------------------------------------------------


def test_a_retrain_killed_while_training_reruns_to_the_uninterrupted_result(baseline, tmp_path):
    """Killed after the MLflow run logged its metrics and judged fit, before the version was registered."""
    root = copy(baseline["prepared"], tmp_path / "run")

    proc = retrain(root, failpoint=f"before_register:{MODEL}")
    assert killed(proc), tail(proc)
    assert registry(root) == {"versions": {}, "aliases": {}}
    [orphan] = mlflow_runs(root)  # the killed run: never finished, never registered
    assert orphan.info.status == "RUNNING" and "holdout_mae" in orphan.data.metrics
    assert not any((root / "lake" / "rentals" / "retrains").glob("*/candidate.json"))
    assert not (root / "lake" / "rentals" / "evaluations").exists()

    proc = retrain(root)
    assert succeeded(proc), tail(proc)
    assert registry(root) == registry(baseline["trained"])
    mv = registry_version(root, "1")
    assert mv.run_id != orphan.info.run_id  # the orphan run's artifacts were not picked up
    assert_same_lake(root, baseline["trained"])


def test_a_retrain_killed_between_registration_and_the_challenger_alias_reruns_to_the_same_decisions(
        baseline, tmp_path):
    root = copy(baseline["prepared"], tmp_path / "run")

    proc = retrain(root, failpoint="before_alias_move:challenger")
    assert killed(proc), tail(proc)
    state = registry(root)
    assert list(state["versions"]) == ["1"] and state["aliases"] == {}  # registered, not yet anyone's challenger
    assert not (root / "lake" / "rentals" / "evaluations").exists()

    proc = retrain(root)
    assert succeeded(proc), tail(proc)
    assert registry(root) == registry(baseline["trained"])  # still one version: the rerun reused it
    assert_same_lake(root, baseline["trained"])


def test_a_retrain_killed_between_the_promotion_evidence_and_the_champion_alias_reruns_to_the_same_decisions(
        baseline, tmp_path):
    root = copy(baseline["prepared"], tmp_path / "run")

    proc = retrain(root, failpoint="before_alias_move:champion")
    assert killed(proc), tail(proc)
    state = registry(root)
    # The evidence is on the version, the alias did not move: nothing serves a half-promoted model.
    assert state["aliases"] == {"challenger": "1"}
    assert "champion.evidence" in state["versions"]["1"]["tags"]
    assert (root / "lake" / "rentals" / "evaluations" / "challenger-v1.json").exists()

    proc = retrain(root)
    assert succeeded(proc), tail(proc)
    assert registry(root) == registry(baseline["trained"])
    assert_same_lake(root, baseline["trained"])


def registry_version(root: Path, version: str):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{root}/mlflow.db", f"sqlite:///{root}/mlflow.db").get_model_version(MODEL, version)
