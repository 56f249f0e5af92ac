"""Labels arrive late: a row with every label column blank is pending (validated with nulls), a row
with some of them blank is quarantined, and every other rule still applies to a pending row."""

import re

import polars as pl
import pytest

from checks.gx_contract import validate
from ml.contract import labels_pending_rows, split_rows, withhold_labels
from ml.features import build_features, feature_contract_violations, skew
from ml.scoring import scoring_features

FILE = "rentals_2011-06-01.csv"
DAY = "2011-06-01"


def cells(content: bytes) -> list[list[bytes]]:
    return [line.split(b",") for line in content.splitlines()]


def set_cells(content: bytes, row: int, values: dict[str, str]) -> bytes:
    """Change cells of data row `row` (0-based) by column name, keeping every other byte."""
    lines = content.splitlines(keepends=True)
    header = lines[0].decode().strip().split(",")
    fields = lines[row + 1].rstrip(b"\n").split(b",")
    for column, value in values.items():
        fields[header.index(column)] = value.encode()
    lines[row + 1] = b",".join(fields) + b"\n"
    return b"".join(lines)


@pytest.fixture(scope="module")
def pending(spec, june_first) -> bytes:
    return withhold_labels(spec, june_first)


def test_spec_label_columns_are_the_target_and_its_leakage(spec):
    assert spec.label_columns == ("cnt", "casual", "registered")


def test_all_labels_blank_is_pending_and_validated_with_nulls(spec, pending):
    result = split_rows(spec, pending, FILE, partition_day=DAY)
    assert result.validated.height == 24 and result.quarantined.height == 0 and result.conserved
    assert all(result.validated[c].null_count() == 24 for c in spec.label_columns)
    assert result.validated["temp"].null_count() == 0
    assert labels_pending_rows(spec, result.validated) == 24


def test_all_labels_present_is_a_normal_row(spec, june_first):
    result = split_rows(spec, june_first, FILE, partition_day=DAY)
    assert result.validated.height == 24 and labels_pending_rows(spec, result.validated) == 0


def test_a_day_can_mix_pending_and_labelled_rows(spec, june_first, pending):
    mixed = b"".join(pending.splitlines(keepends=True)[:13] + june_first.splitlines(keepends=True)[13:])
    result = split_rows(spec, mixed, FILE, partition_day=DAY)
    assert result.validated.height == 24 and labels_pending_rows(spec, result.validated) == 12


@pytest.mark.parametrize("blank", [("cnt",), ("casual",), ("casual", "registered")])
def test_some_labels_blank_is_quarantined_as_partial(spec, june_first, blank):
    result = split_rows(spec, set_cells(june_first, 5, {c: "" for c in blank}), FILE, partition_day=DAY)
    assert result.validated.height == 23 and result.conserved
    reason = result.quarantined["reason"].item()
    # One rule, naming the blank columns; neither not_null nor the sum rule piles on.
    assert re.findall(r"\[([a-z_.]+)\]", reason) == ["labels.partial"], reason
    assert reason.startswith(f"labels (cnt, casual, registered): {', '.join(blank)} blank"), reason


def test_a_pending_row_still_breaks_every_other_rule(spec, pending):
    bad = set_cells(set_cells(pending, 2, {"temp": "warm"}), 3, {"hum": ""})
    result = split_rows(spec, bad, FILE, partition_day=DAY)
    assert result.validated.height == 22
    assert result.quarantined["reason"].to_list() == ["temp: 'warm' is not a float [type.float]",
                                                       "hum: missing value [not_null]"]


def test_present_labels_still_obey_type_range_and_sum_rules(spec, june_first):
    row = cells(june_first)[8]
    cnt = int(row[16])
    broken = {
        "type.int": {"cnt": "many"},
        "range.min": {"casual": "-1", "cnt": str(cnt - int(row[14]) - 1)},
        "sum_rule": {"cnt": str(cnt + 1)},
    }
    for rule, values in broken.items():
        result = split_rows(spec, set_cells(june_first, 7, values), FILE, partition_day=DAY)
        assert rule in result.quarantined["reason"].item(), (rule, result.quarantined["reason"].to_list())


def test_gx_suite_allows_nulls_only_when_all_labels_are_null(spec, june_first, pending):
    full = split_rows(spec, june_first, FILE, partition_day=DAY).validated
    waiting = split_rows(spec, pending, FILE, partition_day=DAY).validated
    mixed = pl.concat([full.head(12), waiting.tail(12)])
    assert validate(spec, mixed).success
    partial = mixed.with_columns(pl.when(pl.col("hr") == 2).then(None).otherwise(pl.col("casual")).alias("casual"))
    failed = {(o.expectation, o.column): o.unexpected for o in validate(spec, partial).failures}
    assert failed == {("expect_column_values_to_not_be_null", "casual"): 1,
                      ("expect_column_pair_values_to_be_equal", "cnt"): 1}
    lonely_total = waiting.with_columns(pl.when(pl.col("hr") == 20).then(5).otherwise(pl.col("cnt")).alias("cnt"))
    failed = {o.column for o in validate(spec, lonely_total).failures if "not_be_null" in o.expectation}
    assert failed == {"casual", "registered"}


def test_features_of_a_pending_day_meet_the_contract_with_a_null_target(spec, pending):
    validated = split_rows(spec, pending, FILE, partition_day=DAY).validated
    features = build_features(spec, validated)
    assert features[spec.target].null_count() == 24 and labels_pending_rows(spec, features) == 24
    assert feature_contract_violations(spec, features) == []
    assert set(skew(features, scoring_features(spec, validated), spec).values()) == {0.0}


def test_withhold_labels_blanks_only_label_fields(spec, june_first, pending):
    before, after = cells(june_first), cells(pending)
    assert after[0] == before[0]
    labels = [before[0].index(c.encode()) for c in spec.label_columns]
    for old, new in zip(before[1:], after[1:], strict=True):
        assert [f for i, f in enumerate(new) if i not in labels] == [f for i, f in enumerate(old) if i not in labels]
        assert [new[i] for i in labels] == [b""] * 3
    assert withhold_labels(spec, pending) == pending


@pytest.mark.parametrize("variant", [
    lambda c: c.replace(b"\n", b"\r\n"),
    lambda c: b"\xef\xbb\xbf" + c.replace(b"\n", b"\n\n", 3).rstrip(b"\n"),
    lambda c: c.replace(b",0.", b",0\xff.", 1),
])
def test_withhold_labels_keeps_line_endings_bom_and_odd_bytes(spec, june_first, variant):
    content = variant(june_first)
    blanked = withhold_labels(spec, content)
    assert blanked == variant(withhold_labels(spec, june_first))
    assert split_rows(spec, blanked, FILE, partition_day=DAY).raw_rows == 24


def test_withhold_labels_follows_the_header_not_the_column_order(spec, june_first):
    header, *body = june_first.decode().splitlines()
    reordered = "\n".join(",".join(line.split(",")[::-1]) for line in [header, *body]).encode() + b"\n"
    validated = split_rows(spec, withhold_labels(spec, reordered), FILE, partition_day=DAY).validated
    assert validated.height == 24 and labels_pending_rows(spec, validated) == 24
    assert validated["temp"].null_count() == 0


def test_withhold_labels_names_a_label_column_missing_from_the_header(spec, june_first):
    with pytest.raises(ValueError, match=r"\['cnt'\] not in header"):
        withhold_labels(spec, june_first.replace(b",cnt", b",count", 1))
