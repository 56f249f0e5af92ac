"""Calendar features derived from the event column: declared in the spec, computed by the one feature
definition (so scoring gets the same values), encoded as value and sin/cos like cyclic columns."""

from dataclasses import replace
from datetime import date

import polars as pl

from ml.contract import split_rows
from ml.features import build_features, feature_contract_violations, feature_names, feature_ranges, skew
from ml.scoring import scoring_features
from ml.spec import Column, UseCaseSpec

FILE = "rentals_2011-06-01.csv"
DAY = "2011-06-01"


def test_the_bike_spec_declares_no_calendar_so_its_features_are_unchanged(spec):
    assert spec.calendar == ()
    assert not [f for f in feature_names(spec) if f.startswith(f"{spec.event_date}_")]


def test_calendar_parts_match_the_bike_files_own_calendar_columns(spec):
    dated = replace(spec, calendar=("weekday", "month", "day_of_year"))
    history = split_rows(dated, open("data/bike_sharing_hourly.csv", "rb").read(), "history").validated
    features = build_features(dated, history)
    # The file counts weekdays from Sunday = 0; the calendar part from Monday = 0.
    assert ((features["dteday_weekday"] + 1) % 7 == history["weekday"]).all()
    assert (features["dteday_month"] == history["mnth"]).all()
    assert features.filter(pl.col("dteday") == date(2012, 12, 31))["dteday_day_of_year"].unique().to_list() == [366]
    assert feature_names(dated)[-9:] == [f"dteday_{p}{s}" for p in ("weekday", "month", "day_of_year")
                                         for s in ("", "_sin", "_cos")]
    assert feature_contract_violations(dated, features) == []


def test_scoring_computes_the_same_calendar_features(spec, june_first):
    dated = replace(spec, calendar=("weekday", "month", "day_of_year"))
    validated = split_rows(dated, june_first, FILE, partition_day=DAY).validated
    training = build_features(dated, validated)
    assert set(skew(training, scoring_features(dated, validated), dated).values()) == {0.0}
    assert training["dteday_weekday"].unique().to_list() == [2]  # 2011-06-01 was a Wednesday


def test_hour_comes_from_a_timestamp_and_wraps_around_midnight():
    spec = UseCaseSpec(
        name="meter", columns=(Column("read_at", "timestamp", format="%d/%m/%Y %H:%M"), Column("kwh", "float")),
        key=("read_at",), target="kwh", leakage=(), event_date="read_at", calendar=("hour",),
        partition_start=date(2017, 12, 1), partition_end=date(2017, 12, 31))
    content = b"read_at,kwh\n1/12/2017 00:00,1.0\n1/12/2017 23:00,2.0\n1/12/2017 12:00,2.0\n"
    features = build_features(spec, split_rows(spec, content, "meter.csv", "2017-12-01").validated)
    assert features["read_at_hour"].to_list() == [0, 23, 12]
    sin, cos = features["read_at_hour_sin"], features["read_at_hour_cos"]
    assert abs(sin[0] - sin[1]) < 0.27 and abs(cos[0] - cos[1]) < 0.04 and cos[2] < -0.99  # 23h next to 0h
    assert feature_ranges(spec)["read_at_hour"] == (0, 23)
