"""The synthetic generator keeps the spec's contract and its knobs do what they say."""

import csv
import io
from datetime import date

import numpy as np
import polars as pl
import pytest

from ml.generator import SHIPPED_CSV, generate_rentals, load_reference, to_csv_bytes
from ml.usecases.bike_rentals import SPEC

DAY = date(2013, 7, 4)
N = 24 * 500


@pytest.fixture(scope="module")
def ref():
    return load_reference(SPEC)


@pytest.fixture(scope="module")
def frame(ref):
    return generate_rentals(SPEC, DAY, N, seed=7, reference=ref)


def _generate(ref, **knobs):
    return generate_rentals(SPEC, DAY, N, seed=7, reference=ref, **knobs)


def test_columns_types_and_shape(frame, ref):
    assert frame.columns == list(SPEC.column_names)
    assert frame.height == N
    assert frame.schema == ref.frame.schema
    assert frame.null_count().row(0) == (0,) * len(SPEC.columns)


def test_values_respect_the_spec(frame):
    for col in SPEC.columns:
        values = frame[col.name]
        if col.allowed is not None:
            assert set(values.unique()) <= set(col.allowed), col.name
        if col.min is not None:
            assert values.min() >= col.min, col.name
        if col.max is not None:
            assert values.max() <= col.max, col.name


def _sum_rules_hold(frame: pl.DataFrame) -> bool:
    return all(
        (frame[r.total] == frame.select(pl.sum_horizontal(r.parts)).to_series()).all()
        for r in SPEC.sum_rules
    )


def test_sum_rules_hold(frame):
    assert _sum_rules_hold(frame)


def test_day_hour_cycle_and_ids(frame):
    assert frame[SPEC.event_date].unique().to_list() == [DAY]
    assert frame["hr"].to_list() == [i % 24 for i in range(N)]
    assert frame["instant"].n_unique() == N


def test_values_are_realistic_for_the_time_of_year(frame, ref):
    summer = ref.frame.filter(pl.col("mnth").is_in([6, 7, 8]))
    assert frame["temp"].mean() == pytest.approx(summer["temp"].mean(), abs=0.05)
    assert frame["cnt"].mean() == pytest.approx(summer["cnt"].mean(), rel=0.15)
    by_hour = frame.group_by("hr").agg(pl.col("cnt").mean()).sort("hr")["cnt"]
    assert by_hour[17] > 3 * by_hour[3]  # evening peak vs. the dead of night


def test_same_seed_same_frame_and_bytes(ref, frame):
    again = _generate(ref)
    assert again.equals(frame)
    first = to_csv_bytes(SPEC, frame, malformed_rate=0.01, seed=3)
    assert to_csv_bytes(SPEC, again, malformed_rate=0.01, seed=3) == first
    assert to_csv_bytes(SPEC, again, malformed_rate=0.01, seed=4).data != first.data
    assert not generate_rentals(SPEC, DAY, N, seed=8, reference=ref).equals(frame)


def test_covariate_shift_moves_the_feature_not_the_counts(ref, frame):
    shifted = _generate(ref, covariate_shift={"temp": 0.1, "weathersit": 1})
    assert shifted["temp"].mean() - frame["temp"].mean() == pytest.approx(0.1, abs=0.02)
    assert shifted["weathersit"].mean() > frame["weathersit"].mean() + 0.5
    assert shifted["cnt"].equals(frame["cnt"])


def test_covariate_shift_refuses_non_features(ref):
    with pytest.raises(ValueError, match="covariate_shift"):
        _generate(ref, covariate_shift={SPEC.target: 1.0})


def test_label_shift_scales_counts(ref, frame):
    shifted = _generate(ref, label_shift=1.5)
    assert shifted["cnt"].mean() / frame["cnt"].mean() == pytest.approx(1.5, rel=0.02)
    assert _sum_rules_hold(shifted)


def test_missing_rate_blanks_features_only(ref):
    holed = _generate(ref, missing_rate=0.1)
    features = [c.name for c in SPEC.input_columns if c.name not in SPEC.key]
    share = holed.select(features).null_count().sum_horizontal().item() / (N * len(features))
    assert share == pytest.approx(0.1, abs=0.01)
    untouched = [c for c in SPEC.column_names if c not in features]
    assert holed.select(untouched).null_count().sum_horizontal().item() == 0


def test_csv_matches_the_shipped_file_format(frame, ref):
    text = to_csv_bytes(SPEC, frame).data.decode()
    assert text.split("\n", 1)[0] == SHIPPED_CSV.read_text().split("\n", 1)[0]
    written = pl.read_csv(io.BytesIO(text.encode()), infer_schema=False)
    for name, decimals in ref.decimals.items():
        fraction = written[name].str.split(".").list.get(1, null_on_oob=True)
        assert fraction.str.len_chars().max() <= decimals, name
    assert text.endswith("\n") and text.count("\n") == N + 1
    assert ".0," not in text and "e-" not in text  # "0" not "0.0", no scientific notation
    assert pl.read_csv(io.BytesIO(text.encode()), try_parse_dates=True).equals(frame)


def test_nulls_are_written_as_empty_fields(ref):
    holed = _generate(ref, missing_rate=0.1)
    back = pl.read_csv(to_csv_bytes(SPEC, holed).data, try_parse_dates=True)
    assert back.equals(holed)


def _is_malformed(fields: list[str]) -> bool:
    """An independent reading of the spec: the row any validator must reject."""
    if len(fields) != len(SPEC.columns):
        return True
    row = dict(zip(SPEC.column_names, fields))
    for col in SPEC.columns:
        if not col.is_numeric:
            continue
        try:
            value = float(row[col.name])
        except ValueError:
            return True
        if col.min is not None and value < col.min:
            return True
    return any(int(row[r.total]) != sum(int(row[p]) for p in r.parts) for r in SPEC.sum_rules)


@pytest.mark.parametrize("rate", [0.0, 0.001, 0.05])
def test_malformed_rows_are_counted_exactly(frame, rate):
    payload = to_csv_bytes(SPEC, frame, malformed_rate=rate, seed=11)
    rows = list(csv.reader(io.StringIO(payload.data.decode())))[1:]
    assert len(rows) == N
    assert payload.n_malformed == round(rate * N)
    assert sum(_is_malformed(r) for r in rows) == payload.n_malformed
    if rate == 0.05:
        assert all(n > 0 for n in payload.malformed.values()), payload.malformed


def test_scales_to_a_large_day(ref):
    big = generate_rentals(SPEC, DAY, 1_000_000, seed=1, reference=ref)
    assert big.height == 1_000_000
    assert np.array_equal(big["hr"][:48].to_numpy(), np.tile(np.arange(24), 2))
