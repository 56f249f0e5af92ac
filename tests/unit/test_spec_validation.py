"""A spec is checked when it is built, so a bad one stops the definitions from loading; every
message names the spec, the column and the problem."""

from dataclasses import replace
from datetime import date

import pytest

from ml.spec import Column, ConditionalRule, Slice, SpecError, UseCaseSpec
from ml.usecases import USE_CASES

COLUMNS = (
    Column("day", "date", raw_name="Date", format="%d/%m/%Y"),
    Column("hour", "int", min=0, max=23, period=24),
    Column("closed", "bool", true_false=("Yes", "No")),
    Column("season", "category", allowed=("Winter", "Summer")),
    Column("temperature", "float", raw_name="Temperature(C)", unit="°C"),
    Column("sales", "int", min=0),
)
GOOD = dict(name="kiosk", columns=COLUMNS, key=("day", "hour"), target="sales", leakage=(), event_date="day",
            partition_start=date(2024, 1, 1), partition_end=date(2024, 12, 31))


def with_column(name: str, **changes) -> tuple[Column, ...]:
    return tuple(replace(c, **changes) if c.name == name else c for c in COLUMNS)


# name -> (changes to the good spec, text the message must contain after "spec 'kiosk': ")
BAD_SPECS = {
    "unknown_type": (dict(columns=with_column("temperature", dtype="decimal")),
                     "column 'temperature': unknown type 'decimal' (known: int, float, bool, category, date, timestamp)"),
    "missing_target": (dict(target="revenue"), "column 'revenue': the target is not a column of the spec"),
    "target_as_monitored_input": (dict(drift_columns=("temperature", "sales")),
                                  "column 'sales': the target is listed in drift_columns, which makes it an input"),
    "target_as_row_id": (dict(ignored=("sales",)), "column 'sales': the target is listed in ignored"),
    "text_target": (dict(target="season"), "column 'season': the target must be int or float, not category"),
    "unknown_event_column": (dict(event_date="when"), "column 'when': the event column is not a column of the spec"),
    "event_column_not_a_date": (dict(event_date="hour"), "column 'hour': the event column must be a date or timestamp"),
    "bad_format_directive": (dict(columns=with_column("day", format="%d/%Q/%Y")), "column 'day': format '%d/%Q/%Y'"),
    "format_without_month": (dict(columns=with_column("day", format="%d/%Y")),
                             "column 'day': format '%d/%Y' does not read back 2021-11-23"),
    "format_on_a_number": (dict(columns=with_column("hour", format="%H")),
                           "column 'hour': a format applies to date and timestamp columns, not int"),
    "duplicate_column": (dict(columns=COLUMNS + (Column("hour", "int"),)), "column 'hour': duplicate column name"),
    "duplicate_raw_name": (dict(columns=COLUMNS + (Column("temp_c", "float", raw_name="Temperature(C)"),)),
                           "column 'Temperature(C)': duplicate raw name in the header"),
    "empty_allowed_set": (dict(columns=with_column("hour", allowed=())), "column 'hour': empty allowed set"),
    "category_without_levels": (dict(columns=with_column("season", allowed=None)),
                                "column 'season': a category column needs its levels declared"),
    "unknown_category_encoding": (dict(columns=with_column("season", encoding="hashed")),
                                  "column 'season': unknown category encoding 'hashed'"),
    "min_above_max": (dict(columns=with_column("hour", min=30)), "column 'hour': min 30 is above max 23"),
    "unknown_duplicate_policy": (dict(duplicates="keep_first"),
                                 "key columns ['day', 'hour']: unknown duplicate policy 'keep_first' "
                                 "(known: quarantine, keep_identical, keep_last, aggregate)"),
    "aggregate_rules_without_policy": (dict(aggregate=(("sales", "sum"),)),
                                       "aggregate rules given but the duplicate policy is 'quarantine'"),
    "unknown_aggregate_rule": (dict(duplicates="aggregate", aggregate=(("sales", "median"),)),
                               "column 'sales': unknown aggregate rule 'median' (known: mean, sum, first)"),
    "mean_of_an_int": (dict(duplicates="aggregate", aggregate=(("sales", "mean"),)),
                       "column 'sales': the mean of an int column is not an int"),
    "unknown_key_column": (dict(key=("day", "minute")), "column 'minute': key column is not a column of the spec"),
    "slice_on_unknown_column": (dict(slices=(Slice("weather", "weather"),)),
                                "column 'weather': slice column is not a column of the spec"),
    "unknown_drift_column": (dict(drift_columns=("humidity",)),
                             "column 'humidity': drift column is not a column of the spec"),
    "unknown_calendar_part": (dict(calendar=("week",)), "column 'day': unknown calendar part 'week'"),
    "hour_from_a_date": (dict(calendar=("hour",)), "column 'day': calendar part 'hour' needs a timestamp"),
    "fill_over_day_unknown": (dict(fill_over_day=("holiday",)),
                              "column 'holiday': fill_over_day column is not a column of the spec"),
    "conditional_rule_unknown_operator": (
        dict(conditional_rules=(ConditionalRule("closed_no_sales", ("closed", True), ("sales", "=", 0)),)),
        "column 'sales': conditional rule 'closed_no_sales': unknown operator '='"),
    "conditional_rule_unknown_level": (
        dict(conditional_rules=(ConditionalRule("no_winter_sales", ("season", "Autumn"), ("sales", "==", 0)),)),
        "column 'season': conditional rule 'no_winter_sales': 'Autumn' is not one of ['Winter', 'Summer']"),
    "unknown_encoding": (dict(encoding="klingon"), "every column: unknown file encoding 'klingon'"),
    "encoding_not_ascii_compatible": (dict(encoding="utf-16"), "file encoding 'utf-16' does not keep ','"),
    "date_column_as_input": (dict(columns=COLUMNS + (Column("opened", "date"),)),
                             "column 'opened': a date column cannot be a model input"),
}


def test_the_table_covers_at_least_eight_kinds():
    assert len(BAD_SPECS) >= 8


def test_the_good_spec_and_the_shipped_specs_are_valid():
    assert UseCaseSpec(**GOOD).column("temperature").header == "Temperature(C)"
    assert USE_CASES  # building them at import already validated them


@pytest.mark.parametrize("name", sorted(BAD_SPECS))
def test_a_bad_spec_fails_at_construction_naming_spec_column_and_problem(name):
    changes, expected = BAD_SPECS[name]
    with pytest.raises(SpecError) as err:
        UseCaseSpec(**{**GOOD, **changes})
    lines = str(err.value).splitlines()
    assert any(line.startswith("spec 'kiosk': ") and expected in line for line in lines), lines


def test_every_problem_is_reported_at_once():
    with pytest.raises(SpecError) as err:
        UseCaseSpec(**{**GOOD, "target": "revenue", "duplicates": "newest", "drift_columns": ("humidity",)})
    assert len(str(err.value).splitlines()) == 3
