"""A day lands before its labels, then again complete: both pass every contract, the second replaces the first."""

import dagster as dg

from assets.common import raw_pointer_key, table_key
from ml.contract import withhold_labels
from resources.sources import LandingSource
from resources.storage import LocalStorage
from tests.dagster.helpers import materialize_days

DAY = "2011-06-01"


def ingest(spec, storage, landing, content: bytes) -> dg.ExecuteInProcessResult:
    """Land the day's file and run ingestion and features with their checks."""
    (landing / spec.file_name(DAY)).write_bytes(content)
    stages = ("raw_rentals", "validated_rentals", "quarantined_rentals", spec.asset("features"))
    result = materialize_days(spec, {"storage": storage, "source": LandingSource(url=str(landing))}, DAY,
                              selection=dg.AssetSelection.assets(*stages))
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == dict.fromkeys(["schema_contract", "volume", "row_contract", "conservation",
                                    "feature_contract", "training_serving_skew"], True)
    return result


def pending_rows(result: dg.ExecuteInProcessResult) -> int:
    event = next(m for m in result.get_asset_materialization_events()
                 if m.asset_key.to_user_string() == "validated_rentals")
    return event.materialization.metadata["labels_pending_rows"].value


def test_a_day_is_scored_before_its_labels_and_completed_when_they_land(spec, june_first, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    storage = LocalStorage(root=str(tmp_path / "lake"))

    early = ingest(spec, storage, landing, withhold_labels(spec, june_first))
    first = storage.read_json(raw_pointer_key(spec, DAY))
    validated = storage.read_parquet(table_key(spec, "validated", DAY))
    features = storage.read_parquet(table_key(spec, "features", DAY))
    assert pending_rows(early) == 24 and validated.height == 24 and validated["cnt"].null_count() == 24
    assert storage.read_parquet(table_key(spec, "quarantined", DAY)).height == 0
    assert features.height == 24 and features["cnt"].null_count() == 24 and features["temp"].null_count() == 0

    complete = ingest(spec, storage, landing, june_first)
    second = storage.read_json(raw_pointer_key(spec, DAY))
    assert first["key"] != second["key"] and storage.exists(first["key"])
    assert storage.read_bytes(second["key"]) == june_first
    validated = storage.read_parquet(table_key(spec, "validated", DAY))
    assert pending_rows(complete) == 0 and validated.height == 24 and validated["cnt"].null_count() == 0
    assert (validated["cnt"] == validated["casual"] + validated["registered"]).all()
    assert storage.read_parquet(table_key(spec, "features", DAY))["cnt"].null_count() == 0
