"""Copies of a key are settled by the spec's policy, never by file order; rules across rows (a
day-level value given once, a conditional rule) quarantine with their name; the Great Expectations
suite agrees on every case, and raw = validated + quarantined + merged throughout."""

import re
from dataclasses import replace

import polars as pl
import pytest

from checks.gx_contract import validate
from ml.contract import split_rows, withhold_labels
from ml.spec import ConditionalRule

FILE = "rentals_2011-06-01.csv"
DAY = "2011-06-01"


def edit(content: bytes, row: int, values: dict[str, str]) -> bytes:
    """Data row `row` (0-based) with some cells changed, as a line to append."""
    lines = content.decode().splitlines()
    header, fields = lines[0].split(","), lines[row + 1].split(",")
    for column, value in values.items():
        fields[header.index(column)] = value
    return (",".join(fields) + "\n").encode()


def row(content: bytes, n: int) -> bytes:
    return edit(content, n, {})


def split(spec, content: bytes):
    result = split_rows(spec, content, FILE, partition_day=DAY)
    assert result.conserved and result.raw_rows == content.count(b"\n") - 1
    assert validate(spec, result.validated).success  # the second implementation agrees
    return result


def rules(frame: pl.DataFrame) -> list[str]:
    return [r for reason in frame["reason"] for r in re.findall(r"\[([a-z_.]+)\]", reason)]


@pytest.fixture(scope="module")
def copies(june_first) -> bytes:
    """Row 3 twice more, identical; row 5 once more with another temperature (a conflict)."""
    return june_first + row(june_first, 3) + row(june_first, 3) + edit(june_first, 5, {"temp": "0.99"})


def test_default_policy_quarantines_identical_extras_and_every_conflicting_copy(spec, copies):
    result = split(spec, copies)
    assert result.validated.height == 23 and result.merged.height == 0
    assert rules(result.quarantined) == ["unique_key.conflict", "unique_key", "unique_key", "unique_key.conflict"]
    assert result.quarantined["line_number"].to_list() == [7, 26, 27, 28]
    assert result.quarantined["reason"][0] == ("key (dteday, hr) = (2011-06-01, 5): 2 copies disagree on temp; "
                                               "none is taken [unique_key.conflict]")
    assert result.quarantined["reason"][1] == "duplicate key ('dteday', 'hr'): same as line 5 [unique_key]"
    assert result.conflict_rows == 2


def test_keep_identical_merges_identical_copies_and_still_quarantines_conflicts(spec, copies):
    result = split(replace(spec, duplicates="keep_identical"), copies)
    assert result.validated.height == 23 and result.conflict_rows == 2 and result.quarantined.height == 2
    assert result.merged["reason"].to_list() == ["folded into line 5 [duplicate.keep_identical]"] * 2


def test_keep_last_takes_the_last_copy_as_declared(spec, june_first, copies):
    result = split(replace(spec, duplicates="keep_last"), copies)
    assert result.validated.height == 24 and result.quarantined.height == 0 and result.merged.height == 3
    assert result.validated.filter(pl.col("hr") == 5)["temp"].to_list() == [0.99]
    assert result.merged.select("line_number", "reason").rows() == [
        (5, "folded into line 27 [duplicate.keep_last]"), (7, "folded into line 28 [duplicate.keep_last]"),
        (26, "folded into line 27 [duplicate.keep_last]")]
    # Each validated row sits where its line was: the last copies of hours 3 and 5 are at the end.
    assert result.validated["hr"].to_list() == [h for h in range(24) if h not in (3, 5)] + [3, 5]


def test_aggregate_applies_each_columns_rule_and_quarantines_what_no_rule_settles(spec, june_first):
    spec = replace(spec, duplicates="aggregate", aggregate=(("temp", "mean"), ("casual", "sum"),
                                                            ("registered", "sum"), ("cnt", "sum")))
    original = split(spec, june_first).validated.filter(pl.col("hr") == 5).row(0, named=True)
    again = edit(june_first, 5, {"temp": "0.5"})
    warmer = split(spec, june_first + again).validated.filter(pl.col("hr") == 5).row(0, named=True)
    assert warmer["temp"] == pytest.approx((original["temp"] + 0.5) / 2)
    assert warmer["cnt"] == 2 * original["cnt"] and warmer["casual"] == 2 * original["casual"]
    windier = split(spec, june_first + edit(june_first, 5, {"windspeed": "0.9"}))
    assert rules(windier.quarantined) == ["unique_key.conflict"] * 2 and "on windspeed;" in windier.quarantined["reason"][0]


def test_a_bad_copy_never_claims_a_key(spec, june_first):
    result = split(spec, june_first + edit(june_first, 5, {"hum": "-1"}))
    assert result.validated.height == 24 and rules(result.quarantined) == ["range.min"]


def test_a_day_level_value_given_once_fills_the_day(spec, june_first):
    holiday = replace(spec, fill_over_day=("holiday",))
    lines = june_first.splitlines(keepends=True)
    blanked = lines[0] + lines[1] + b"".join(edit(june_first, i, {"holiday": ""}) for i in range(1, 24))
    assert split(spec, blanked).quarantined.height == 23  # without the declaration, blanks are missing values
    result = split(holiday, blanked)
    assert result.validated["holiday"].to_list() == [0] * 24 and result.quarantined.height == 0


def test_two_values_of_a_day_level_column_quarantine_the_whole_day(spec, june_first):
    holiday = replace(spec, fill_over_day=("holiday",))
    lines = june_first.splitlines(keepends=True)
    mixed = lines[0] + b"".join(lines[1:24]) + edit(june_first, 23, {"holiday": "1", "workingday": "0"})
    result = split(holiday, mixed)
    assert result.validated.height == 0 and result.quarantined.height == 24
    assert set(result.quarantined["reason"]) == {
        "holiday: 2 different values on 2011-06-01; a day-level value holds for the whole day [fill_over_day]"}
    failed = validate(holiday, result.validated.vstack(split(spec, mixed).validated)).failures
    assert [(o.expectation, o.unexpected) for o in failed] == [("expect_column_pair_values_to_be_equal", 24)]


def test_a_conditional_rule_quarantines_with_its_name_and_gx_agrees(spec, june_first):
    ruled = replace(spec, conditional_rules=(
        ConditionalRule("holidays_are_off_days", when=("holiday", 1), then=("workingday", "==", 0)),))
    lines = june_first.splitlines(keepends=True)
    content = b"".join(lines[:24]) + edit(june_first, 23, {"holiday": "1"})  # a holiday that is a working day
    result = split(ruled, content)
    assert result.quarantined["reason"].to_list() == [
        "workingday == 0 when holiday == 1: workingday is 1 [conditional.holidays_are_off_days]"]
    unruled = split_rows(spec, content, FILE, partition_day=DAY).validated
    failed = validate(ruled, unruled).failures
    assert [(o.expectation, o.column, o.unexpected) for o in failed] == [
        ("expect_column_values_to_be_between", "workingday", 1)]


def test_a_conditional_rule_skips_rows_whose_labels_are_pending(spec, june_first):
    closed = replace(spec, conditional_rules=(
        ConditionalRule("no_rentals_on_bad_weather", when=("weathersit", 1), then=("cnt", "<=", 0)),))
    labelled = split_rows(closed, june_first, FILE, partition_day=DAY)
    assert labelled.quarantined.height == labelled.raw_rows - labelled.validated.height > 0
    assert set(rules(labelled.quarantined)) == {"conditional.no_rentals_on_bad_weather"}
    assert split(closed, withhold_labels(closed, june_first)).validated.height == 24
