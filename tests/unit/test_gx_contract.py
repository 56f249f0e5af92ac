"""The row contract's GX validation: each expectation's configuration is built once per validation,
and that changes no result."""

from contextlib import nullcontext
from datetime import date

import great_expectations.expectations as gxe
import polars as pl
import pytest
from great_expectations.expectations import expectation as gx_expectation

import checks.gx_contract as gx_contract
from ml.contract import split_rows

DAY = date(2011, 6, 1)


@pytest.fixture(scope="module")
def day(spec, june_first) -> pl.DataFrame:
    return split_rows(spec, june_first, "2011-06-01.csv", partition_day=DAY.isoformat()).validated


def _result(outcome) -> dict:
    result = outcome.result.to_json_dict()
    result["meta"]["batch_markers"].pop("ge_load_time")  # when the frame was loaded
    return result


def _builds(monkeypatch) -> list[str]:
    """Records each configuration GX builds (it names the expectation's type once per build)."""
    built, name = [], gx_expectation.camel_to_snake
    monkeypatch.setattr(gx_expectation, "camel_to_snake", lambda s: built.append(s) or name(s))
    return built


@pytest.mark.parametrize("broken", [False, True], ids=["passing day", "failing day"])
def test_building_each_configuration_once_gives_gx_s_own_result(spec, day, broken, monkeypatch):
    if broken:  # an hour out of range and a temperature out of range: validated again with counts
        day = day.with_columns(pl.when(pl.col("hr") == 3).then(99).otherwise(pl.col("hr")).alias("hr"),
                               pl.when(pl.col("hr") == 5).then(2.0).otherwise(pl.col("temp")).alias("temp"))
    once = gx_contract.validate(spec, day, DAY, DAY)
    monkeypatch.setattr(gx_contract, "_each_configuration_built_once", nullcontext)
    as_gx_does = gx_contract.validate(spec, day, DAY, DAY)
    assert once.success is as_gx_does.success is (not broken)
    assert once.outcomes == as_gx_does.outcomes
    assert _result(once) == _result(as_gx_does)
    if broken:
        assert [(o.column, o.unexpected) for o in once.failures] == [("hr", 1), ("temp", 1)]


def test_a_validation_builds_each_configuration_a_few_times_not_dozens(spec, day, monkeypatch):
    expectations = len(gx_contract.build_suite(spec, DAY, DAY).expectations)
    built = _builds(monkeypatch)
    gx_contract.validate(spec, day, DAY, DAY)
    once = len(built)
    monkeypatch.setattr(gx_contract, "_each_configuration_built_once", nullcontext)
    built.clear()
    gx_contract.validate(spec, day, DAY, DAY)
    # measured on GX 1.24.1: 330 builds (a few fresh objects per expectation), 2,896 as GX does (76 each)
    assert once <= 10 * expectations and len(built) >= 5 * once


def test_outside_a_validation_the_configuration_follows_the_expectation(spec, day):
    gx_contract.validate(spec, day, DAY, DAY)  # installs the shim
    assert getattr(gx_expectation.Expectation.configuration.fget, "_built_once", False)  # this GX takes it
    expectation = gxe.ExpectColumnValuesToBeBetween(column="hr", min_value=0, max_value=23)
    assert expectation.configuration.kwargs["max_value"] == 23
    expectation.max_value = 24
    assert expectation.configuration.kwargs["max_value"] == 24
    with gx_contract._each_configuration_built_once():
        first = expectation.configuration
        assert expectation.configuration is first
    assert expectation.configuration is not first
