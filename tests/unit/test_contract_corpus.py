"""The bad-input corpus: each kind of bad file and the outcome it must have.

Every case either quarantines rows with a readable reason (and loses none), or fails the whole file
with a message naming the file, the column and the rule.
"""

import pytest

from ml.contract import ContractViolation, count_rows, split_rows
from checks.ingestion import volume_anomalies

FILE = "rentals_2011-06-01.csv"
DAY = "2011-06-01"
HEADER = "instant,dteday,season,yr,mnth,hr,holiday,weekday,workingday,weathersit,temp,atemp,hum,windspeed,casual,registered,cnt"
COLS = HEADER.split(",")


def rows(content: bytes) -> list[list[str]]:
    return [line.split(",") for line in content.decode().splitlines()[1:]]


def write(header: list[str], body: list[list[str]], sep: str = ",") -> bytes:
    return ("\n".join([sep.join(header)] + [sep.join(r) for r in body]) + "\n").encode()


def set_cell(content: bytes, row: int, column: str, value: str) -> bytes:
    body = rows(content)
    body[row][COLS.index(column)] = value
    return write(COLS, body)


def drop_column(content: bytes, column: str) -> bytes:
    i = COLS.index(column)
    return write([c for c in COLS if c != column], [r[:i] + r[i + 1:] for r in rows(content)])


def rename_column(content: bytes, old: str, new: str) -> bytes:
    return write([new if c == old else c for c in COLS], rows(content))


def whole_column(content: bytes, column: str, value: str) -> bytes:
    body = rows(content)
    for r in body:
        r[COLS.index(column)] = value
    return write(COLS, body)


# name -> (mutation, expected quarantined rows, rule in the reason)
QUARANTINE_CASES = {
    "wrong_type_in_one_cell": (lambda c: set_cell(c, 3, "temp", "warm"), 1, "type.float"),
    "unparseable_date": (lambda c: set_cell(c, 2, "dteday", "2011-13-45"), 1, "type.date"),
    "row_dated_outside_partition": (lambda c: set_cell(c, 5, "dteday", "2011-06-02"), 1, "[partition]"),
    "negative_count": (lambda c: set_cell(set_cell(c, 1, "casual", "-1"), 1, "cnt", str(int(rows(c)[1][16]) - int(rows(c)[1][14]) - 1)), 1, "range.min"),
    "normalised_value_above_one": (lambda c: set_cell(c, 0, "hum", "1.5"), 1, "range.max"),
    "normalised_value_below_zero": (lambda c: set_cell(c, 0, "windspeed", "-0.1"), 1, "range.min"),
    "sum_rule_broken": (lambda c: set_cell(c, 7, "cnt", str(int(rows(c)[7][16]) + 1)), 1, "sum_rule"),
    "duplicate_key_identical_row": (lambda c: c + c.splitlines(keepends=True)[4], 1, "[unique_key]"),
    # Copies that disagree: neither is taken on file order; both wait in quarantine as a conflict.
    "duplicate_key_conflicting_values": (lambda c: c + set_cell(c, 3, "temp", "0.99").splitlines(keepends=True)[4], 2,
                                         "disagree on temp; none is taken [unique_key.conflict]"),
    "truncated_last_line": (lambda c: c.rstrip(b"\n")[:-12], 1, "field_count"),
    "too_many_fields": (lambda c: c + c.splitlines()[6] + b",42\n", 1, "field_count"),
    "non_utf8_bytes": (lambda c: c.replace(b",0.", b",0\xff.", 1), 1, "not valid utf-8 [encoding]"),
    "nan_and_infinity": (lambda c: set_cell(set_cell(c, 0, "temp", "NaN"), 1, "hum", "inf"), 2, "[finite]"),
    "missing_value": (lambda c: set_cell(c, 9, "hum", ""), 1, "not_null"),
    "category_not_allowed": (lambda c: set_cell(c, 9, "weathersit", "5"), 1, "allowed_values"),
    "fractional_integer": (lambda c: set_cell(c, 9, "hr", "3.5"), 1, "type.int"),
    "all_rows_bad": (lambda c: whole_column(c, "casual", "-5"), 24, "range.min"),
    "ten_times_larger_file": (lambda c: c + b"".join(c.splitlines(keepends=True)[1:]) * 9, 216, "[unique_key]"),
    "labels_partly_blank": (lambda c: set_cell(set_cell(c, 4, "casual", ""), 6, "cnt", ""), 2, "labels.partial"),
}

# name -> (mutation, expected validated rows): variations that are not errors.
CLEAN_CASES = {
    "bom_at_file_start": (lambda c: b"\xef\xbb\xbf" + c, 24),
    "crlf_line_endings": (lambda c: c.replace(b"\n", b"\r\n"), 24),
    "blank_lines": (lambda c: c.replace(b"\n", b"\n\n", 3), 24),
    "padded_values": (lambda c: set_cell(c, 0, "temp", " 0.5 "), 24),
    "integer_written_as_float": (lambda c: set_cell(c, 0, "holiday", "0.0"), 24),
    "columns_reordered": (lambda c: write(COLS[::-1], [r[::-1] for r in rows(c)]), 24),
    "header_only": (lambda c: c.splitlines(keepends=True)[0], 0),
    "no_trailing_newline": (lambda c: c.rstrip(b"\n"), 24),
    "labels_not_arrived_yet": (lambda c: whole_column(whole_column(whole_column(c, "cnt", ""), "casual", ""),
                                                      "registered", ""), 24),
}

# name -> (mutation, column named in the error (None for the whole file), rule)
FAIL_CASES = {
    "missing_column": (lambda c: drop_column(c, "temp"), "temp", "schema.required_column"),
    "extra_column": (lambda c: write(COLS + ["station"], [r + ["7"] for r in rows(c)]), "station", "schema.unexpected_column"),
    "renamed_column": (lambda c: rename_column(c, "cnt", "count"), "cnt", "schema.required_column"),
    "wrong_type_whole_column": (lambda c: whole_column(c, "temp", "warm"), "temp", "type.float"),
    "wrong_date_format": (lambda c: c.replace(b"2011-06-01", b"06/01/2011"), "dteday", "type.date"),
    "empty_file": (lambda c: b"", None, "file.not_empty"),
    "whitespace_only_file": (lambda c: b"\n\n  \n", None, "file.not_empty"),
    "wrong_delimiter": (lambda c: c.replace(b",", b";"), None, "file.delimiter"),
    "duplicate_header_column": (lambda c: write(COLS[:-1] + ["casual"], rows(c)), None, "schema"),
    "undecodable_header": (lambda c: c.replace(b"temp", b"t\xe9mp", 1), None, "file.encoding"),
    "file_in_another_encoding": (lambda c: c.replace(b",2011-", b",\xe92011-"), None, "file.encoding"),
}


def test_corpus_has_at_least_twenty_kinds_of_bad_input():
    assert len(QUARANTINE_CASES) + len(FAIL_CASES) >= 20


@pytest.mark.parametrize("name", sorted(QUARANTINE_CASES))
def test_bad_rows_are_quarantined_with_their_rule_and_none_lost(spec, june_first, name):
    mutate, expected, rule = QUARANTINE_CASES[name]
    content = mutate(june_first)
    result = split_rows(spec, content, FILE, partition_day=DAY)
    assert result.quarantined.height == expected, result.quarantined["reason"].to_list()
    assert all(rule in r for r in result.quarantined["reason"]), result.quarantined["reason"].to_list()
    assert result.conserved and result.raw_rows == count_rows(content)
    # The quarantined text is the line as it arrived, so nothing is lost even for undecodable rows.
    lines = content.decode("utf-8", errors="replace").splitlines()
    for n, raw in result.quarantined.select("line_number", "raw_line").iter_rows():
        assert lines[n - 1].rstrip("\r") == raw


@pytest.mark.parametrize("name", sorted(CLEAN_CASES))
def test_harmless_variations_pass_every_row(spec, june_first, name):
    mutate, expected = CLEAN_CASES[name]
    result = split_rows(spec, mutate(june_first), FILE, partition_day=DAY)
    assert result.validated.height == expected and result.quarantined.height == 0, result.quarantined
    assert result.conserved


@pytest.mark.parametrize("name", sorted(FAIL_CASES))
def test_schema_breaks_fail_naming_file_column_and_rule(spec, june_first, name):
    mutate, column, rule = FAIL_CASES[name]
    with pytest.raises(ContractViolation) as err:
        split_rows(spec, mutate(june_first), FILE, partition_day=DAY)
    message = str(err.value)
    assert FILE in message and rule in message
    if column:
        assert f"column {column!r}" in message
    else:
        assert "whole file" in message


def test_ten_times_larger_file_is_flagged_as_a_volume_anomaly(spec, june_first):
    content = QUARANTINE_CASES["ten_times_larger_file"][0](june_first)
    assert volume_anomalies(spec, {DAY: count_rows(content), "2011-06-02": 24}) == {DAY: 240}


def test_validated_rows_are_typed_as_the_spec_says(spec, june_first):
    validated = split_rows(spec, june_first, FILE, partition_day=DAY).validated
    assert validated.columns == list(spec.column_names)
    assert str(validated.schema["dteday"]) == "Date" and str(validated.schema["temp"]) == "Float64"
    assert validated["cnt"].sum() == sum(int(r[16]) for r in rows(june_first))
