"""The row-level contract of validated data as a Great Expectations 1.x suite, derived from the spec.

GX is imported lazily: it costs seconds to import, and only validation needs it.

Labels arrive late, so label columns (target and leakage) may be null, but only all together: each
is expected not null on the rows where any label column is present (a row condition).

Rules across columns and rows are checked on their own terms, not by re-running ml/contract.py: a
conditional rule is an expectation under a row condition; a day-level column has at most one
value per day: its smallest and largest value of the day are equal (computed here, like the sum of a
sum rule).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, time

import polars as pl

from ml.heavy import heavy_import
from ml.spec import UseCaseSpec


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str
    success: bool
    unexpected: int


@dataclass(frozen=True)
class ContractOutcome:
    success: bool
    rows: int
    outcomes: list[ExpectationOutcome]
    result: object = None  # GX's ExpectationSuiteValidationResult, rendered as Data Docs (checks/data_docs.py)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def to_markdown(self) -> str:
        lines = ["| expectation | column | unexpected | ok |", "| --- | --- | ---: | :---: |"]
        lines += [f"| {o.expectation} | {o.column} | {o.unexpected} | {'✅' if o.success else '❌'} |" for o in self.outcomes]
        return "\n".join(lines)


def _sum_column(rule) -> str:
    return "__sum_" + "_".join(rule.parts)


def _day_column(name: str, bound: str) -> str:
    return f"__day_{bound}_{name}"


def _conditional_expectation(rule, condition):
    """The `then` side of a conditional rule as an expectation on the rows where `when` holds."""
    import great_expectations.expectations as gxe

    column, op, value = rule.then
    if op == "!=":
        return gxe.ExpectColumnValuesToNotBeInSet(column=column, value_set=[value], row_condition=condition)
    bounds = {"==": dict(min_value=value, max_value=value), "<": dict(max_value=value, strict_max=True),
              "<=": dict(max_value=value), ">": dict(min_value=value, strict_min=True), ">=": dict(min_value=value)}
    return gxe.ExpectColumnValuesToBeBetween(column=column, row_condition=condition, **bounds[op])


def build_suite(spec: UseCaseSpec, first_day: date | None = None, last_day: date | None = None):
    gx = heavy_import("great_expectations")
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column, OrCondition

    # Collected, then handed to the suite at once: `add_expectation` compares each new expectation
    # with every earlier one (quadratic, ~0.9 s of pydantic per suite), to dedupe what is unique here.
    expectations = [gxe.ExpectTableColumnsToMatchSet(column_set=list(spec.column_names), exact_match=False)]
    labelled = OrCondition(conditions=[Column(name).is_not_null() for name in spec.label_columns])
    for c in spec.columns:
        if not c.nullable:
            expectations.append(gxe.ExpectColumnValuesToNotBeNull(
                column=c.name, row_condition=labelled if c.name in spec.label_columns else None))
        if c.allowed is not None:
            expectations.append(gxe.ExpectColumnValuesToBeInSet(column=c.name, value_set=list(c.allowed)))
        elif c.min is not None or c.max is not None:
            expectations.append(gxe.ExpectColumnValuesToBeBetween(column=c.name, min_value=c.min, max_value=c.max))
    if first_day and last_day:
        # min/max rather than a row-wise "between": GX checks datetimes between bounds row by row
        # in Python (measured 5.7 s per million rows), while min and max are two vector reductions.
        lo, hi = datetime.combine(first_day, time()), datetime.combine(last_day, time.max)
        expectations.append(gxe.ExpectColumnMinToBeBetween(column=spec.event_date, min_value=lo, max_value=hi))
        expectations.append(gxe.ExpectColumnMaxToBeBetween(column=spec.event_date, min_value=lo, max_value=hi))
    expectations.append(
        gxe.ExpectCompoundColumnsToBeUnique(column_list=list(spec.key)) if len(spec.key) > 1
        else gxe.ExpectColumnValuesToBeUnique(column=spec.key[0]))
    for rule in spec.sum_rules:
        # Pending rows have a null total and a null sum: GX skips a pair when both values are missing.
        expectations.append(gxe.ExpectColumnPairValuesToBeEqual(column_A=rule.total, column_B=_sum_column(rule)))
    for rule in spec.conditional_rules:
        column, value = rule.when
        expectations.append(_conditional_expectation(rule, Column(column) == value))
    for name in spec.fill_over_day:
        expectations.append(gxe.ExpectColumnPairValuesToBeEqual(column_A=_day_column(name, "min"),
                                                                column_B=_day_column(name, "max")))
    return gx.ExpectationSuite(name=f"{spec.name}_validated", expectations=expectations)


# Expectation id -> (the expectation, its configuration) during one GX validation; None outside one.
_CONFIGURATIONS: ContextVar[dict[int, tuple] | None] = ContextVar("gx_configurations", default=None)


def _configuration_built_once() -> None:
    """Make `Expectation.configuration` build once per expectation object inside `validate`.

    GX 1.24 rebuilds an expectation's configuration (a pydantic `dict()` round trip and a regex over
    the class name) each time it reads one of its kwargs: 76 times per expectation per validation,
    41% of a day's validation time (cProfile, 38 expectations, one day of rentals). GX builds fresh
    expectation objects for every validation and changes none of them during it, so within one
    validation (`_each_configuration_built_once`) the first build of each object is reused; everywhere
    else the property builds as GX does. The object is kept beside its configuration, so its id cannot be
    reused by another object while the cache lives. Installed once; a GX whose `configuration` is no
    longer a plain property is left alone (tests/unit/test_gx_contract.py checks both)."""
    from great_expectations.expectations.expectation import Expectation

    built = Expectation.__dict__.get("configuration")
    if not isinstance(built, property) or getattr(built.fget, "_built_once", False):
        return

    def configuration(self):
        cache = _CONFIGURATIONS.get()
        if cache is None:
            return built.fget(self)
        entry = cache.get(id(self))
        if entry is None:
            entry = cache[id(self)] = (self, built.fget(self))
        return entry[1]

    configuration._built_once = True
    Expectation.configuration = property(configuration, doc=built.__doc__)


@contextmanager
def _each_configuration_built_once() -> Iterator[None]:
    _configuration_built_once()
    token = _CONFIGURATIONS.set({})
    try:
        yield
    finally:
        _CONFIGURATIONS.reset(token)


def _validated(batch, suite, result_format: str):
    with _each_configuration_built_once():
        return batch.validate(suite, result_format=result_format)


@functools.cache
def _batch_definition(name: str):
    """A whole-data-frame batch definition in an ephemeral GX context, one per use case and process:
    building the context and its data source took ~30 ms of each day's validation. It holds no rule;
    the suite is built per validation."""
    gx = heavy_import("great_expectations")
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas(name).add_dataframe_asset("validated")
    return asset.add_batch_definition_whole_dataframe("all")


def validate(spec: UseCaseSpec, frame: pl.DataFrame, first_day: date | None = None,
             last_day: date | None = None) -> ContractOutcome:
    """Run the suite on a validated frame; every expectation must hold for 100% of rows."""
    frame = frame.with_columns(
        [pl.sum_horizontal(r.parts, ignore_nulls=False).alias(_sum_column(r)) for r in spec.sum_rules]
        + [getattr(pl.col(name), bound)().over(pl.col(spec.event_date).cast(pl.Date)).alias(_day_column(name, bound))
           for name in spec.fill_over_day for bound in ("min", "max")]
        + [pl.col(spec.event_date).cast(pl.Datetime("us"))]
    )
    batch = _batch_definition(spec.name).get_batch(batch_parameters={"dataframe": frame.to_pandas()})
    suite = build_suite(spec, first_day, last_day)
    # Booleans first: unexpected counts cost GX about as much again (0.36 against 0.76 s a day,
    # measured on one day of rentals, most of it per-expectation overhead, not rows), and a passing
    # day has none to count. Only a failing day is validated again for its counts.
    result = _validated(batch, suite, "BOOLEAN_ONLY")
    if not result.success:
        result = _validated(batch, suite, "BASIC")
    outcomes = []
    for r in result.results:
        kwargs = r.expectation_config.kwargs
        column = kwargs.get("column") or ",".join(kwargs.get("column_list") or []) or kwargs.get("column_A", "")
        outcomes.append(ExpectationOutcome(
            expectation=r.expectation_config.type,
            column=column,
            success=bool(r.success),
            unexpected=int(r.result.get("unexpected_count") or 0),
        ))
    return ContractOutcome(success=bool(result.success), rows=frame.height, outcomes=outcomes, result=result)
