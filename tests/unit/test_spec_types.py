"""Column types beyond numbers, on lines shaped like the Seoul file: raw header names with spaces and
units, day-first dates, timestamps, booleans written as words, text categories with declared levels,
and the file encoding declared on the spec."""

from datetime import date, datetime

import polars as pl
import pytest

from ml.contract import ContractViolation, split_rows
from ml.features import build_features, feature_contract_violations, feature_names, feature_ranges
from ml.spec import Column, UseCaseSpec

FILE = "city_bikes_2018-04-11.csv"
DAY = "2018-04-11"
HEADER = "Date,Rented Bike Count,Hour,Temperature(C),Seasons,Holiday,Functioning Day"
# Real lines of the Seoul file (columns cut to the header above); 11/4/2018 was not a functioning day.
LINES = [
    "11/4/2018,0,0,14.4,Spring,No Holiday,No",
    "11/4/2018,0,1,13.6,Spring,No Holiday,No",
    "11/04/2018,0,2,13.1,Spring,Holiday,no",
]

CITY = UseCaseSpec(
    name="city_bikes",
    columns=(
        Column("date", "date", raw_name="Date", format="%d/%m/%Y"),
        Column("rented_bike_count", "int", raw_name="Rented Bike Count", min=0),
        Column("hour", "int", raw_name="Hour", min=0, max=23, period=24),
        Column("temperature", "float", raw_name="Temperature(C)", unit="°C", min=-40, max=50),
        Column("seasons", "category", raw_name="Seasons", allowed=("Winter", "Spring", "Summer", "Autumn"),
               encoding="ordinal"),
        Column("holiday", "category", raw_name="Holiday", allowed=("Holiday", "No Holiday")),
        Column("functioning_day", "bool", raw_name="Functioning Day", true_false=("Yes", "No")),
    ),
    key=("date", "hour"), target="rented_bike_count", leakage=(), event_date="date",
    partition_start=date(2017, 12, 1), partition_end=date(2018, 11, 30),
)


def csv(*lines: str, header: str = HEADER) -> bytes:
    return ("\r\n".join([header, *lines]) + "\r\n").encode()


def reasons(content: bytes, spec: UseCaseSpec = CITY, day: str = DAY) -> list[str]:
    result = split_rows(spec, content, FILE, partition_day=day)
    assert result.conserved
    return result.quarantined["reason"].to_list()


def test_raw_names_map_to_clean_names_with_declared_types():
    validated = split_rows(CITY, csv(*LINES), FILE, partition_day=DAY).validated
    assert validated.columns == list(CITY.column_names)
    assert validated.schema == pl.Schema({
        "date": pl.Date, "rented_bike_count": pl.Int64, "hour": pl.Int64, "temperature": pl.Float64,
        "seasons": pl.String, "holiday": pl.String, "functioning_day": pl.Boolean})
    assert validated["date"].to_list() == [date(2018, 4, 11)] * 3  # with and without zero padding
    assert validated["functioning_day"].to_list() == [False] * 3  # "No" and "no"
    assert validated["holiday"].to_list() == ["No Holiday", "No Holiday", "Holiday"]


def test_a_month_first_date_breaks_the_day_first_format():
    assert reasons(csv(LINES[0], "4/13/2018,0,1,13.6,Spring,No Holiday,No")) == [
        "Date: '4/13/2018' is not a date '%d/%m/%Y' [type.date]"]


def test_a_word_that_is_neither_true_nor_false_is_quarantined():
    assert reasons(csv(LINES[0], "11/4/2018,0,1,13.6,Spring,No Holiday,Maybe")) == [
        "Functioning Day: 'Maybe' is not a bool 'Yes'/'No' [type.bool]"]


def test_a_level_that_is_not_declared_is_quarantined_and_a_blank_one_is_missing():
    assert reasons(csv(LINES[0], "11/4/2018,0,1,13.6,Monsoon,No Holiday,No", "11/4/2018,0,2,13.1,,Holiday,No")) == [
        "Seasons: Monsoon not in ['Winter', 'Spring', 'Summer', 'Autumn'] [allowed_values]",
        "Seasons: missing value [not_null]"]


def test_schema_breaks_name_the_column_as_the_file_spells_it():
    with pytest.raises(ContractViolation) as err:
        split_rows(CITY, csv(*LINES, header=HEADER.replace("Rented Bike Count", "rented_bike_count")), FILE, DAY)
    assert f"{FILE}: column 'Rented Bike Count': rule 'schema.required_column'" in str(err.value)
    with pytest.raises(ContractViolation, match=r"column 'Date': rule 'type.date' broken: only 0% of values parse as "
                                                r"date '%d/%m/%Y' \(e.g. '2018-04-11'\)"):
        split_rows(CITY, csv(*(line.replace("11/4/2018", "2018-04-11") for line in LINES[:2])), FILE, DAY)


def test_text_categories_become_indicators_or_level_indices():
    validated = split_rows(CITY, csv(*LINES), FILE, partition_day=DAY).validated
    features = build_features(CITY, validated)
    assert feature_names(CITY) == ["hour", "hour_sin", "hour_cos", "temperature", "seasons", "holiday_holiday",
                                   "holiday_no_holiday", "functioning_day"]
    assert features["seasons"].to_list() == [1, 1, 1]  # "Spring" is the second declared level
    assert features["holiday_holiday"].to_list() == [0.0, 0.0, 1.0]
    assert feature_ranges(CITY)["seasons"] == (0.0, 3.0) and feature_ranges(CITY)["functioning_day"] == (0, 1)
    assert feature_contract_violations(CITY, features) == []


def test_a_timestamp_event_column_partitions_by_its_date():
    spec = UseCaseSpec(
        name="meter", columns=(Column("read_at", "timestamp", raw_name="Read At", format="%d/%m/%Y %H:%M"),
                               Column("kwh", "float", min=0)),
        key=("read_at",), target="kwh", leakage=(), event_date="read_at",
        partition_start=date(2017, 12, 1), partition_end=date(2017, 12, 31))
    result = split_rows(spec, csv("1/12/2017 00:00,1.5", "1/12/2017 23:45,2.0", "2/12/2017 00:00,1.0",
                                  header="Read At,kwh"), FILE, partition_day="2017-12-01")
    assert result.validated["read_at"].to_list() == [datetime(2017, 12, 1, 0, 0), datetime(2017, 12, 1, 23, 45)]
    assert result.quarantined["reason"].to_list() == ["Read At: 2/12/2017 00:00 outside partition 2017-12-01 [partition]"]


CP1252 = UseCaseSpec(
    name="thermo", encoding="cp1252",
    columns=(Column("day", "date"), Column("temperature", "float", raw_name="Temperature(°C)", unit="°C")),
    key=("day",), target="temperature", leakage=(), event_date="day",
    partition_start=date(2024, 1, 1), partition_end=date(2024, 12, 31))


def test_a_file_in_the_declared_encoding_is_read():
    content = "day,Temperature(°C)\n2024-03-01,4.5\n".encode("cp1252")
    assert split_rows(CP1252, content, FILE, "2024-03-01").validated["temperature"].to_list() == [4.5]


def test_a_file_not_in_the_declared_encoding_fails_naming_file_and_encoding():
    content = "day,Temperature(°C)\n2024-03-01,4.5\n".encode("cp1252")
    utf8 = UseCaseSpec(**{**CP1252.__dict__, "encoding": "utf-8"})
    with pytest.raises(ContractViolation, match=rf"{FILE}: whole file: rule 'file.encoding' broken: 1 of 2 lines are "
                                                 r"not valid utf-8 \(first at line 1\)"):
        split_rows(utf8, content, FILE, "2024-03-01")


def test_a_byte_undefined_in_the_encoding_quarantines_its_row_only():
    content = "day,Temperature(°C)\n2024-03-01,4.5\n".encode("cp1252") + b"2024-03-01,\x81\n"
    assert reasons(content, CP1252, "2024-03-01") == [
        "line has bytes that are not valid cp1252 [encoding]; Temperature(°C): '\ufffd' is not a float [type.float]"]
