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
        Column("time", "timestamp", raw_name="Time", format="%d/%m/%Y %H:%M"),  # day first
        Column("weather", "category", raw_name="Weather", allowed=("sunny", "cloudy", "rainy")),
        Column("temperature", "float", raw_name="Temperature (C)", unit="°C", min=-30, max=50),
        Column("sales", "int", raw_name="Sales", min=0),
    ),
    key=("time",),
    target="sales",
    leakage=(),
    event_date="time",
    calendar=("hour", "weekday"),
    # Two readings of one hour are averaged (temperature) or added up (sales), never quarantined.
    duplicates="aggregate",
    aggregate=(("temperature", "mean"), ("sales", "sum")),
    partition_start=date(2024, 1, 1),
    partition_end=date(2024, 12, 31),
    drift_columns=("temperature", "weather"),
)


def kiosk_file(day: int) -> str:
    rows = [f"{day:02d}/03/2024 {h}:00,{('sunny', 'cloudy', 'rainy')[h % 3]},{10 + h / 2},{20 + h}" for h in range(24)]
    rows.append(f"{day:02d}/03/2024 5:00,rainy,13.5,7")  # a second reading of 05:00: aggregated
    rows.append(f"{day:02d}/03/2024 25:00,sunny,11.0,5")  # no such hour: quarantined, not dropped
    return "Time,Weather,Temperature (C),Sales\n" + "\n".join(rows) + "\n"


def test_a_second_use_case_is_a_spec_and_gets_the_whole_graph(spec, tmp_path, monkeypatch):
    defs = build_definitions([spec, KIOSK_SALES])
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw_kiosk_sales", "validated_kiosk_sales", "kiosk_features", "kiosk_drift_report"} <= keys
    assert {"raw_rentals", "rental_features"} <= keys
    assert {"daily_kiosk_sales", "retrain_kiosk_sales"} <= {j.name for j in defs.jobs}

    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "kiosk_sales_2024-03-01.csv").write_text(kiosk_file(1))  # 2024-03-02 never lands
    storage = LocalStorage(root=str(tmp_path / "lake"))
    # Its own source, from variables named after it; the bike use case keeps replaying its history.
    monkeypatch.setenv("KIOSK_SALES_SOURCE", "landing")
    monkeypatch.setenv("KIOSK_SALES_LANDING_URL", str(landing))
    source = build_resources([spec, KIOSK_SALES])["source"]
    result = materialize_days(KIOSK_SALES, {"storage": storage, "source": source}, "2024-03-01", "2024-03-02",
                              selection=["raw_kiosk_sales", "validated_kiosk_sales", "quarantined_kiosk_sales",
                                         "kiosk_features"])
    assert result.success  # the missing day is a gap, not a failed backfill
    raw_meta = result.asset_materializations_for_node("raw_kiosk_sales")[0].metadata
    assert raw_meta["no_data_days"].value == ["2024-03-02"]
    features = storage.read_parquet(table_key(KIOSK_SALES, "features", "2024-03-01"))
    assert features.height == 24
    assert {"time_hour_sin", "time_weekday_cos", "weather_rainy", "temperature"} <= set(features.columns)
    five = features.filter(pl.col("time").dt.hour() == 5)
    assert five["sales"].to_list() == [25 + 7] and five["temperature"].to_list() == [(12.5 + 13.5) / 2]
    quarantined = storage.read_parquet(table_key(KIOSK_SALES, "quarantined", "2024-03-01"))
    assert quarantined.height == 1 and "Time" in quarantined["reason"][0]
    validated = next(e for e in result.get_asset_materialization_events()
                     if e.asset_key.to_user_string() == "validated_kiosk_sales")
    assert validated.materialization.metadata["merged_rows"].value == 1  # 26 raw rows = 24 validated + 1 quarantined + 1 merged
