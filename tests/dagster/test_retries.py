"""Faults: a step that touches the lake retries a transient storage error; a deterministic failure
(a broken contract, a window without data) fails once, at once, with its own message."""

from pathlib import Path

import dagster as dg
import pytest

import assets.common
from assets.common import table_key
from resources.sources import LandingSource
from resources.storage import LocalStorage, StorageError
from tests.dagster.helpers import UNUSED, materialize_days

INGEST_AND_FEATURES = dg.AssetSelection.assets(
    "raw_rentals", "validated_rentals", "quarantined_rentals", "rental_features").without_checks()
SPLIT = dg.AssetSelection.assets("validated_rentals", "quarantined_rentals").without_checks()


class FlakyStorage(LocalStorage):
    """A local lake whose first calls fail as S3 away for a moment would: `faults` maps
    "<method>:<text in the key>" to how many of those calls fail (a StorageError each). The count is
    kept in files under `ledger`, since Dagster may build the resource anew for each step."""

    ledger: str
    faults: dict[str, int] = {}

    def _fault(self, method: str, key: str) -> None:
        for rule, times in self.faults.items():
            name, _, text = rule.partition(":")
            if name != method or text not in key:
                continue
            folder = Path(self.ledger) / rule.replace("/", "_").replace(":", "_")
            folder.mkdir(parents=True, exist_ok=True)
            failed = len(list(folder.iterdir()))
            if failed < times:
                (folder / str(failed)).touch()
                raise StorageError(f"S3 {method} of {key} failed after up to 6 attempts: connection refused "
                                   "(injected by the test)")

    def write_bytes(self, key: str, data: bytes) -> str:
        self._fault("write_bytes", key)
        return super().write_bytes(key, data)

    def read_bytes(self, key: str) -> bytes:
        self._fault("read_bytes", key)
        return super().read_bytes(key)


@pytest.fixture
def quick_retries(monkeypatch):
    """The shared policy with a tiny delay; the graph reads it when it is built, i.e. in the test."""
    monkeypatch.setattr(assets.common, "STEP_RETRY", dg.RetryPolicy(max_retries=2, delay=0.01,
                                                                     backoff=dg.Backoff.EXPONENTIAL))


def step_events(result, event_type: dg.DagsterEventType) -> list[str]:
    return [e.step_key for e in result.all_events if e.event_type == event_type]


def failure_descriptions(result) -> list[str]:
    return [e.step_failure_data.user_failure_data.description if e.step_failure_data.user_failure_data
            else e.step_failure_data.error.message for e in result.get_step_failure_events()]


def test_every_step_that_touches_the_lake_or_the_registry_has_the_shared_retry_policy(spec):
    from orchestration.definitions import build_use_case

    defs = build_use_case(spec)
    steps = [*defs.assets, *defs.asset_checks]
    # Every asset and check carries it itself, also when materialized outside a job (the UI, a sensor's
    # check request).
    missing = [s.node_def.name for s in steps if s.node_def.retry_policy != assets.common.STEP_RETRY]
    assert missing == []
    assert {"raw_rentals", "contract_split_rentals", "rental_drift_report", "rental_performance_report"} <= {
        s.node_def.name for s in steps}


def test_a_storage_fault_after_raw_is_retried_and_the_run_succeeds(spec, replay, tmp_path, quick_retries):
    # The split's first read of the raw file and the features' first write both fail once.
    storage = FlakyStorage(root=str(tmp_path / "lake"), ledger=str(tmp_path / "ledger"),
                           faults={"read_bytes:rentals/raw/": 1, "write_bytes:rentals/features/": 1})
    result = materialize_days(spec, {"storage": storage, "source": replay}, "2011-06-01", "2011-06-02",
                              selection=INGEST_AND_FEATURES)
    assert result.success
    retried = step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert sorted(retried) == ["contract_split_rentals", "rental_features"]
    assert sorted(step_events(result, dg.DagsterEventType.STEP_RESTARTED)) == retried
    assert not result.get_step_failure_events()
    assert storage.read_parquet(table_key(spec, "features", "2011-06-02")).height == 24
    retry = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert "connection refused" in retry.event_specific_data.error.cause.message


def test_the_contract_checks_retry_too(spec, replay, tmp_path, quick_retries):
    """The checks of checks/ carry the policy as well: conservation reads the merged table first."""
    from orchestration.definitions import build_use_case

    storage = FlakyStorage(root=str(tmp_path / "lake"), ledger=str(tmp_path / "ledger"),
                           faults={"read_bytes:rentals/merged/": 1})
    defs = dg.Definitions.merge(build_use_case(spec), dg.Definitions(
        resources={**UNUSED, "storage": storage, "source": replay}, executor=dg.in_process_executor))
    result = defs.resolve_job_def("ingest_rentals").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
        tags={"dagster/asset_partition_range_start": "2011-06-01", "dagster/asset_partition_range_end": "2011-06-01"})
    assert result.success
    assert step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == ["validated_rentals_conservation"]
    assert all(e.passed for e in result.get_asset_check_evaluations() if e.check_name == "conservation")


def broken_landing(tmp_path, june_first) -> LandingSource:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "rentals_2011-06-01.csv").write_bytes(june_first.replace(b",cnt", b",count"))
    return LandingSource(url=str(landing))


def test_a_broken_contract_fails_the_split_once_without_retry(spec, june_first, tmp_path):
    """Run without its blocking check, the split meets the schema break itself: the real policy would
    wait seconds before each retry, so a retry here would show as events and as time."""
    resources = {"storage": LocalStorage(root=str(tmp_path / "lake")), "source": broken_landing(tmp_path, june_first)}
    raw_only = dg.AssetSelection.assets("raw_rentals").without_checks()
    assert materialize_days(spec, resources, "2011-06-01", selection=raw_only).success
    result = materialize_days(spec, resources, "2011-06-01", selection=SPLIT)
    assert not result.success
    assert step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    assert step_events(result, dg.DagsterEventType.STEP_FAILURE) == ["contract_split_rentals"]
    [message] = failure_descriptions(result)
    assert "rentals_2011-06-01.csv" in message and "'cnt'" in message and "schema.required_column" in message


def test_a_failed_blocking_check_in_a_job_is_not_retried(spec, june_first, tmp_path):
    from orchestration.definitions import build_use_case

    defs = dg.Definitions.merge(build_use_case(spec), dg.Definitions(resources={
        **UNUSED, "storage": LocalStorage(root=str(tmp_path / "lake")), "source": broken_landing(tmp_path, june_first)},
        executor=dg.in_process_executor))
    result = defs.resolve_job_def("ingest_rentals").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
        tags={"dagster/asset_partition_range_start": "2011-06-01", "dagster/asset_partition_range_end": "2011-06-01"})
    assert not result.success
    assert step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    schema = next(e for e in result.get_asset_check_evaluations() if e.check_name == "schema_contract")
    assert not schema.passed and "schema.required_column" in schema.description


def test_a_training_window_without_data_fails_at_once(spec, replay, tmp_path):
    resources = {"storage": LocalStorage(root=str(tmp_path / "lake")), "source": replay}
    from orchestration.definitions import build_use_case

    result = dg.materialize(
        [*build_use_case(spec).assets],
        selection="rental_training_set", resources={**UNUSED, **resources},
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
        run_config={"ops": {"rental_training_set": {"config": {"cutoff": "2011-04-01"}}}})
    assert not result.success
    assert step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    [message] = failure_descriptions(result)
    assert message.startswith("features: 0 of ") and "day(s) have data (2011-01-01..2011-03-31)" in message
