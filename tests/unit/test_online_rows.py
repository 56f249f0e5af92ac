"""Online rows obey the batch's row contract and get the batch's features: a day sent as a request is
typed and featured exactly as `validated_<name>` and `<entity>_features` do it, every bad value is refused
with the rule the quarantine would give it, and a malformed envelope names the input and what is wrong."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from ml.contract import split_rows
from ml.features import build_features, feature_matrix
from ml.usecases import USE_CASES, replay_file
from resources.sources import ReplaySource
from serving.protocol import ProtocolError, parse_request
from serving.rows import RequestError, RequestRows

DAY = "2011-06-01"


def parsed_columns(rows: RequestRows, request: dict) -> dict[str, list]:
    return rows.columns(parse_request(json.dumps(request).encode()).inputs)


@pytest.mark.parametrize("name,day", [("rentals", DAY), ("seoul_bikes", "2018-06-01")])
def test_a_day_sent_online_is_typed_and_featured_exactly_as_the_batch_does_it(name, day):
    spec = USE_CASES[name]
    raw = ReplaySource(csv_path=replay_file(spec)).fetch(spec, day)
    validated = split_rows(spec, raw.content, raw.name, partition_day=day).validated
    rows = RequestRows(spec)
    judged = rows.judge(rows.cells(parsed_columns(rows, rows.request(validated))))
    assert not judged.broken.any()
    assert judged.validated.equals(validated.select(c.name for c in rows.inputs))
    assert np.array_equal(judged.X, feature_matrix(spec, build_features(spec, validated)))
    assert {c.name for c in rows.inputs} == set(spec.column_names) - set(spec.label_columns)


CASES = [  # column, the JSON value sent, the text a file would hold
    ("temp", 1.5, "1.5"),
    ("hr", -1, "-1"),
    ("season", 5, "5"),
    ("hum", math.nan, "nan"),
    ("windspeed", math.inf, "inf"),
    ("hr", "x", "x"),
    ("hr", 5.5, "5.5"),
    ("dteday", "2011-02-30", "2011-02-30"),
    ("temp", None, ""),
]


@pytest.mark.parametrize("column,value,text", CASES, ids=[f"{c}={t or 'blank'}" for c, _, t in CASES])
def test_a_bad_value_is_refused_with_the_rule_the_quarantine_gives_it(spec, june_first, column, value, text):
    lines = june_first.decode().splitlines()
    header, fields = lines[0].split(","), lines[1].split(",")
    fields[header.index(column)] = text
    quarantined = split_rows(spec, "\n".join([lines[0], ",".join(fields), *lines[2:]]).encode(), "f.csv",
                             partition_day=DAY).quarantined
    batch_rules = set(re.findall(r"\[([a-z_.]+)\]", quarantined["reason"][0]))

    rows = RequestRows(spec)
    validated = split_rows(spec, june_first, "f.csv", partition_day=DAY).validated
    request = rows.request(validated)
    tensor = next(t for t in request["inputs"] if t["name"] == column)
    tensor["data"][0] = value
    cells = rows.cells(rows.columns(parse_request(json.dumps(request).encode()).inputs))
    judged = rows.judge(cells)
    assert judged.broken.tolist() == [True] + [False] * 23
    errors = rows.errors(cells)
    assert {e.rule for e in errors} == batch_rules and {e.field for e in errors} == {column}
    assert {e.row for e in errors} == {0} and all(column in e.message for e in errors)


def test_a_json_string_is_not_a_number_even_when_it_spells_one(spec, june_first):
    rows = RequestRows(spec)
    request = rows.request(split_rows(spec, june_first, "f.csv").validated.head(1))
    next(t for t in request["inputs"] if t["name"] == "temp")["data"] = ["0.5"]
    next(t for t in request["inputs"] if t["name"] == "holiday")["data"] = [True]
    errors = rows.errors(rows.cells(parsed_columns(rows, request)))
    assert {(e.field, e.rule) for e in errors} == {("temp", "type.float"), ("holiday", "type.int")}


@pytest.fixture
def request_body(spec, june_first):
    rows = RequestRows(spec)
    return rows, rows.request(split_rows(spec, june_first, "f.csv").validated.head(3))


def envelope_errors(rows, request) -> set[tuple[str | None, str]]:
    with pytest.raises(RequestError) as refused:
        parsed_columns(rows, request)
    return {(e.field, e.rule) for e in refused.value.errors}


def test_missing_extra_and_label_inputs_are_named(request_body):
    rows, request = request_body
    request["inputs"] = [t for t in request["inputs"] if t["name"] != "temp"]
    request["inputs"] += [{"name": "cnt", "shape": [3], "datatype": "INT64", "data": [1, 2, 3]},
                          {"name": "colour", "shape": [3], "datatype": "BYTES", "data": ["a", "b", "c"]}]
    assert envelope_errors(rows, request) == {("temp", "input.required"), ("cnt", "input.unexpected"),
                                              ("colour", "input.unexpected")}


def test_wrong_datatype_shape_duplicates_and_uneven_rows_are_named(request_body):
    rows, request = request_body
    by_name = {t["name"]: t for t in request["inputs"]}
    by_name["temp"]["datatype"] = "BYTES"
    by_name["hum"]["shape"] = [4]
    request["inputs"].append(dict(by_name["hr"]))
    assert envelope_errors(rows, request) == {("temp", "input.datatype"), ("hum", "input.shape"),
                                              ("hr", "input.unique")}
    request["inputs"] = [t for t in request["inputs"][:-1]]
    by_name["temp"]["datatype"], by_name["hum"]["shape"] = "FP32", [3]
    by_name["hr"].update(shape=[2], data=by_name["hr"]["data"][:2])
    assert envelope_errors(rows, request) == {(None, "input.rows")}


@pytest.mark.parametrize("body,message", [
    (b'{"inputs": [', "malformed JSON"),
    (b"\xff\xfe", "malformed JSON"),
    (b'{"id": "x"}', "inputs: Field required"),
    (b'{"inputs": [], "colour": 1}', "colour: Extra inputs are not permitted"),
    (b'{"inputs": [{"name": "hr", "shape": "3", "datatype": "INT64", "data": [1]}]}', "inputs.0.shape"),
    (b'{"inputs": [], "outputs": [{"name": "proba"}]}', "unknown output(s) ['proba']"),
])
def test_a_malformed_envelope_is_a_400_saying_what_is_wrong(body, message):
    with pytest.raises(ProtocolError) as refused:
        parse_request(body)
    assert refused.value.status == 400 and message in refused.value.message


def test_nan_and_infinity_tokens_reach_the_contract_as_numbers():
    request = parse_request(
        b'{"inputs": [{"name": "temp", "shape": [2], "datatype": "FP64", "data": [NaN, Infinity]}]}')
    assert math.isnan(request.inputs[0].data[0]) and request.inputs[0].data[1] == math.inf


def test_seoul_booleans_and_text_categories_use_the_spec_words():
    spec = USE_CASES["seoul_bikes"]
    raw = ReplaySource(csv_path=replay_file(spec)).fetch(spec, "2018-06-01")
    rows = RequestRows(spec)
    request = rows.request(split_rows(spec, raw.content, raw.name).validated.head(2))
    by_name = {t["name"]: t for t in request["inputs"]}
    assert by_name["functioning_day"]["datatype"] == "BOOL" and by_name["functioning_day"]["data"] == [True, True]
    by_name["functioning_day"]["data"] = ["Yes", None]
    by_name["seasons"]["data"] = ["Summer", "summer"]
    errors = rows.errors(rows.cells(parsed_columns(rows, request)))
    assert {(e.row, e.field, e.rule) for e in errors} == {
        (0, "functioning_day", "type.bool"), (1, "functioning_day", "not_null"), (1, "seasons", "allowed_values")}
    assert by_name["date"]["data"] == ["01/06/2018", "01/06/2018"]  # the spec's day-first format


# Values the contract refuses, by column type; each kind of bad value and good values alike go through
# both paths. 3.0 and 1 are accepted but sent in another JSON type than the column's own: the memo keys
# them apart from 3 and 1.0, which it keeps as they are.
BAD = {"int": [-1, 5.5, "x", None, 99, True, 3.0], "float": [math.nan, math.inf, 1.5, -100.0, None, "0.5", 1, -0.0],
       "category": ["summer", "", None, 3], "date": ["2011-02-30", "x", None, 7], "bool": ["Yes", None, 1]}


@pytest.mark.parametrize("name", ["rentals", "seoul_bikes"])
def test_the_memo_gives_the_polars_pass_outcome_bit_for_bit(name):
    spec = USE_CASES[name]
    data = split_rows(spec, Path(replay_file(spec)).read_bytes(), "f.csv").validated
    memo, plain = RequestRows(spec, memo_cells=16), RequestRows(spec, memo_cells=0)
    rng = np.random.default_rng(11)
    requests = []
    for size in (1, 3, 1, 40, 300, 7):
        request = memo.request(data[rng.integers(0, data.height, size)])
        for tensor in request["inputs"]:
            bad = BAD[memo.spec.column(tensor["name"]).dtype]
            tensor["data"] = [bad[rng.integers(len(bad))] if rng.random() < 0.03 else v for v in tensor["data"]]
        requests.append(request)
    refused = []
    for request in requests + requests[::-1]:  # again: hits, and misses of what 16 slots no longer hold
        columns = parsed_columns(memo, request)
        cells, texts = memo.cells(columns), plain.cells(columns)  # the memo keeps numbers as its keys
        got, want = memo.judge(cells), plain.judge(texts)
        assert got.validated.equals(want.validated) and got.validated.schema == want.validated.schema
        assert np.array_equal(got.broken, want.broken)
        assert got.X.dtype == want.X.dtype and got.X.tobytes() == want.X.tobytes()
        assert memo.errors(cells) == plain.errors(texts)
        refused += want.broken.tolist()
    assert 0 < sum(refused) < len(refused) / 2


def test_values_seen_are_scored_without_a_polars_pass(spec, june_first):
    rows = RequestRows(spec)
    cells = rows.cells(parsed_columns(rows, rows.request(split_rows(spec, june_first, "f.csv").validated)))
    first = rows.judge(cells)

    def no_pass(cells):
        raise AssertionError("a polars pass for values the memo holds")

    rows._passed = no_pass
    again = rows.judge({n: v[::-1] for n, v in cells.items()})
    assert np.array_equal(again.X, first.X[::-1])


def test_memos_warmed_from_the_lake_score_its_rows_without_a_polars_pass(spec, june_first):
    validated = split_rows(spec, june_first, "f.csv").validated
    rows = RequestRows(spec)
    rows.warm(validated)
    columns = parsed_columns(rows, rows.request(validated))

    def no_pass(m, keys):
        raise AssertionError("a polars pass for values the warm-up saw")

    rows._passed = no_pass
    warmed = rows.judge(rows.cells(columns))
    plain = RequestRows(spec, memo_cells=0)
    assert np.array_equal(warmed.X, plain.judge(plain.cells(columns)).X)
    cold = RequestRows(spec)
    cold._passed = no_pass
    cold.warm(validated.drop(cold.inputs[0].name))  # a table without every input: skipped, nothing judged
