"""Text-typed columns past the contract: the replay source finds a raw-named, day-first event column;
slices read text categories and booleans back from a feature table; estimator excludes name the
column (or calendar feature) a feature comes from, whatever underscores its name has."""

from dataclasses import replace

import numpy as np
import pytest

from ml.contract import split_rows
from ml.evaluation import metrics_by_slice, slice_labels
from ml.features import build_features, feature_names, feature_sources
from ml.spec import Column, ConditionalRule, Slice, SpecError
from resources.sources import ReplaySource
from tests.unit.test_spec_types import CITY as SPEC_TYPES_CITY

HEADER = "Date,Rented Bike Count,Hour,Dew point temperature(C),Seasons,Holiday,Functioning Day"
LINES = [
    "30/11/2018,120,0,-3.5,Autumn,No Holiday,Yes",
    "1/12/2017,254,0,-17.6,Winter,No Holiday,Yes",
    "1/12/2017,204,1,-17.6,Winter,Holiday,Yes",
    "01/12/2017,0,2,-17.7,Winter,No Holiday,No",
]

# The Seoul-shaped spec of test_spec_types, with the dew point (an underscored name) for the
# temperature, one-hot seasons, calendar features, the closed-day rule, slices and excludes.
CITY = replace(
    SPEC_TYPES_CITY,
    columns=tuple(
        Column("dew_point_temperature", "float", raw_name="Dew point temperature(C)", min=-50, max=40)
        if c.name == "temperature" else replace(c, encoding="onehot") if c.name == "seasons" else c
        for c in SPEC_TYPES_CITY.columns),
    calendar=("weekday", "month"),
    conditional_rules=(ConditionalRule("closed_means_no_rentals", when=("functioning_day", False),
                                       then=("rented_bike_count", "==", 0)),),
    slices=(Slice("season", "seasons"), Slice("holiday", "holiday", labels=("holiday", "working")),
            Slice("functioning_day", "functioning_day")),
    estimator_excludes=("seasons", "dew_point_temperature", "date_month"),
)


def csv(*lines: str) -> bytes:
    return ("\r\n".join([HEADER, *lines]) + "\r\n").encode()


def test_replay_source_finds_the_event_column_by_raw_name_and_reads_day_first_dates(tmp_path):
    path = tmp_path / "city_bikes.csv"
    path.write_bytes(csv(*LINES))
    served = ReplaySource(csv_path=str(path)).fetch(CITY, "2017-12-01")
    assert served.name == "city_bikes_2017-12-01.csv"
    assert served.content == csv(*LINES[1:])  # byte for byte, padded and unpadded dates alike
    result = split_rows(CITY, served.content, served.name, "2017-12-01")
    assert result.validated.height == 3 and result.quarantined.height == 0


@pytest.mark.parametrize("encoding", ["onehot", "ordinal"])
def test_slices_read_text_categories_and_booleans_back_from_the_feature_table(encoding):
    spec = replace(CITY, columns=tuple(replace(c, encoding=encoding) if c.dtype == "category" else c
                                       for c in CITY.columns))
    validated = split_rows(spec, csv(*LINES[1:]), "f.csv", "2017-12-01").validated
    features = build_features(spec, validated)
    on_rows, on_features = slice_labels(spec, validated), slice_labels(spec, features)
    assert {k: v.to_list() for k, v in on_features.items()} == {k: v.to_list() for k, v in on_rows.items()} == {
        "season": ["Winter"] * 3, "holiday": ["working", "holiday", "working"],
        "functioning_day": ["Yes", "Yes", "No"]}
    y = validated["rented_bike_count"].to_numpy()
    rows = metrics_by_slice(spec, features, y, np.zeros(y.size))
    assert [(r["slice"], r["segment"], r["n"]) for r in rows] == [
        ("season", "Winter", 3), ("holiday", "holiday", 1), ("holiday", "working", 2),
        ("functioning_day", "Yes", 2), ("functioning_day", "No", 1)]


def test_a_slice_without_bins_needs_declared_levels_or_a_bool_column():
    with pytest.raises(SpecError, match=r"column 'dew_point_temperature': slice 'dew' needs bins"):
        replace(CITY, slices=(Slice("dew", "dew_point_temperature"),))


def test_estimator_excludes_name_the_source_column_or_calendar_feature():
    sources = feature_sources(CITY)
    assert list(sources) == feature_names(CITY)
    assert sources["dew_point_temperature"] == "dew_point_temperature"
    assert sources["seasons_winter"] == "seasons" and sources["date_month_cos"] == "date_month"
    assert sources["date_weekday_sin"] == "date_weekday"
    kept = [n for n, s in sources.items() if s not in CITY.estimator_excludes]
    assert not any(n.startswith(("seasons", "dew_point", "date_month")) for n in kept)
    assert {"hour", "holiday_holiday", "functioning_day", "date_weekday"} <= set(kept)
    with pytest.raises(SpecError, match=r"column 'date_year': estimator exclude \(a column or a calendar feature\)"):
        replace(CITY, estimator_excludes=("date_year",))


def test_a_conditional_rule_on_a_bool_column_compares_with_true_or_false_not_the_files_word():
    with pytest.raises(SpecError, match=r"column 'functioning_day': conditional rule 'closed': a bool column is "
                                        r"compared with True or False, not 'No'"):
        replace(CITY, conditional_rules=(ConditionalRule("closed", when=("functioning_day", "No"),
                                                         then=("rented_bike_count", "==", 0)),))
