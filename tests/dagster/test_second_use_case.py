"""The README's "add a use case" recipe, followed to the letter: a new spec, no copied graph."""

from datetime import date

import polars as pl

from assets.common import table_key
from ml.spec import Column, UseCaseSpec
from orchestration.definitions import build_definitions
from orchestration.resources import build_resources
from resources.storage import LocalStorage
from tests.dagster.helpers import materialize_days

KIOSK_SALES = UseCaseSpec(
    name="kiosk_sales",
    entity="kiosk",
    columns=(
        Column("day", "date"),
        Column("hour", "int", min=0, max=23, period=24),
        Column("rain", "int", allowed=(0, 1), categorical=True),
        Column("temperature", "float", min=-30, max=50),
        Column("sales", "int", min=0),
    ),
    key=("day", "hour"),
    target="sales",
    leakage=(),
    event_date="day",
    partition_start=date(2024, 1, 1),
    partition_end=date(2024, 12, 31),
    drift_columns=("temperature", "rain"),
)


def test_a_second_use_case_is_a_spec_and_gets_the_whole_graph(spec, tmp_path, monkeypatch):
    defs = build_definitions([spec, KIOSK_SALES])
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw_kiosk_sales", "validated_kiosk_sales", "kiosk_features", "kiosk_drift_report"} <= keys
    assert {"raw_rentals", "rental_features"} <= keys
    assert {"daily_kiosk_sales", "retrain_kiosk_sales"} <= {j.name for j in defs.jobs}

    landing = tmp_path / "landing"
    landing.mkdir()
    rows = [f"2024-03-0{d},{h},{h % 2},{10 + h / 2},{20 + h}" for d in (1,) for h in range(24)]
    rows.append("2024-03-01,24,0,11.0,5")  # hour out of range: quarantined, not dropped
    (landing / "kiosk_sales_2024-03-01.csv").write_text("day,hour,rain,temperature,sales\n" + "\n".join(rows) + "\n")
    storage = LocalStorage(root=str(tmp_path / "lake"))
    # Its own source, from variables named after it; the bike use case keeps replaying its history.
    monkeypatch.setenv("KIOSK_SALES_SOURCE", "landing")
    monkeypatch.setenv("KIOSK_SALES_LANDING_URL", str(landing))
    source = build_resources([spec, KIOSK_SALES])["source"]
    result = materialize_days(KIOSK_SALES, {"storage": storage, "source": source},
                              "2024-03-01", selection=["raw_kiosk_sales", "validated_kiosk_sales",
                                                       "quarantined_kiosk_sales", "kiosk_features"])
    assert result.success
    features = storage.read_parquet(table_key(KIOSK_SALES, "features", "2024-03-01"))
    assert features.height == 24 and {"hour_sin", "hour_cos", "temperature", "sales"} <= set(features.columns)
    quarantined = storage.read_parquet(table_key(KIOSK_SALES, "quarantined", "2024-03-01"))
    assert quarantined["reason"].to_list() == ["hour: 24 above maximum 23 [range.max]"]
    assert pl.Series(features["hour"]).max() == 23
