"""A day without a file is a gap recorded as data, not a failed run; windows use the days present."""

import dagster as dg
import polars as pl
import pytest

from assets.common import raw_pointer_key, table_key
from assets.features import NotEnoughDays, load_days, present_days
from resources.sources import LandingSource
from resources.storage import LocalStorage
from tests.dagster.helpers import materialize_days


def test_a_range_with_a_missing_day_records_the_gap_and_ingests_the_rest(spec, tmp_path, june_first):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / spec.file_name("2011-06-01")).write_bytes(june_first)
    storage = LocalStorage(root=str(tmp_path / "lake"))
    result = materialize_days(spec, {"storage": storage, "source": LandingSource(url=str(landing))},
                              "2011-06-01", "2011-06-02", selection=dg.AssetSelection.assets(f"raw_{spec.name}").without_checks())
    assert result.success
    metadata = result.asset_materializations_for_node(f"raw_{spec.name}")[0].metadata
    assert metadata["no_data"].value is False and metadata["no_data_days"].value == ["2011-06-02"]
    assert "has not landed" in metadata["reason"].value
    gap = storage.read_json(raw_pointer_key(spec, "2011-06-02"))
    assert gap["no_data"] is True and gap["rows"] == 0
    assert storage.read_json(raw_pointer_key(spec, "2011-06-01"))["rows"] == 24


def test_a_range_backfill_across_a_gap_passes_every_contract_and_accounts_for_every_row(spec, tmp_path, june_first):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / spec.file_name("2011-06-01")).write_bytes(june_first)
    storage = LocalStorage(root=str(tmp_path / "lake"))
    keys = (*(f"{s}_{spec.name}" for s in ("raw", "validated", "quarantined")), spec.asset("features"))
    ingest = dg.AssetSelection.assets(*keys)
    checks = {"schema_contract", "row_contract", "conservation", "feature_contract", "training_serving_skew"}
    result = materialize_days(spec, {"storage": storage, "source": LandingSource(url=str(landing))},
                              "2011-06-01", "2011-06-02",
                              selection=ingest.without_checks() | dg.AssetSelection.checks_for_assets(*keys))
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks <= set(evaluations) and all(evaluations[c].passed for c in checks)
    assert storage.read_parquet(table_key(spec, "validated", "2011-06-01")).height == 24
    assert not storage.exists(table_key(spec, "validated", "2011-06-02"))


def test_a_day_with_no_file_materializes_as_no_data_down_to_the_features(spec, tmp_path):
    storage = LocalStorage(root=str(tmp_path / "lake"))
    result = materialize_days(spec, {"storage": storage, "source": LandingSource(url=str(tmp_path))}, "2011-06-02",
                              selection=dg.AssetSelection.assets(f"raw_{spec.name}", spec.asset("features")).without_checks())
    assert result.success
    for node in (f"raw_{spec.name}", spec.asset("features")):
        assert result.asset_materializations_for_node(node)[0].metadata["no_data"].value is True
    assert not storage.exists(table_key(spec, "features", "2011-06-02"))


@pytest.fixture
def three_of_four_days(spec, tmp_path) -> tuple[LocalStorage, list[str]]:
    storage = LocalStorage(root=str(tmp_path))
    days = ["2011-06-01", "2011-06-02", "2011-06-03", "2011-06-04"]
    for d in days[:2] + days[3:]:
        storage.write_parquet(table_key(spec, "features", d), pl.DataFrame({"day": [d]}))
    return storage, days


def test_a_window_uses_the_days_present_and_names_the_missing_ones(spec, three_of_four_days):
    storage, days = three_of_four_days
    assert present_days(spec, storage, "features", days) == (days[:2] + days[3:], ["2011-06-03"])
    assert load_days(spec, storage, "features", days, min_share=0.75)["day"].to_list() == days[:2] + days[3:]


def test_too_few_days_present_is_a_clear_error(spec, three_of_four_days):
    storage, days = three_of_four_days
    with pytest.raises(NotEnoughDays, match=r"3 of 4 day\(s\) have data \(2011-06-01..2011-06-04\), 80% needed; "
                                            r"missing: 2011-06-03"):
        load_days(spec, storage, "features", days, min_share=0.8)
    with pytest.raises(NotEnoughDays, match="0 of 1"):
        load_days(spec, storage, "features", ["2011-07-01"], min_share=0.0)
