"""The use-case spec: the single place that describes a data set.

Contracts, features, slices and partitioning are derived from a `UseCaseSpec`; adding a use case
means writing a new spec, not copying the graph.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from datetime import date, datetime

import polars as pl

DTYPES = ("int", "float", "bool", "category", "date", "timestamp")
DEFAULT_FORMATS = {"date": "%Y-%m-%d", "timestamp": "%Y-%m-%d %H:%M:%S"}
CATEGORY_ENCODINGS = ("onehot", "ordinal")
DUPLICATE_POLICIES = ("quarantine", "keep_identical", "keep_last", "aggregate")
AGGREGATIONS = ("mean", "sum", "first")
OPERATORS = ("==", "!=", "<", "<=", ">", ">=")
# Calendar parts derived from the event column: (lowest value, highest value, period of the cycle).
CALENDAR_PARTS = {"hour": (0, 23, 24), "weekday": (0, 6, 7), "month": (1, 12, 12), "day_of_year": (1, 366, 366)}
# Day 23 > 12 and minute 45: a format that swaps day and month or drops a field cannot round-trip it.
_FORMAT_PROBE = datetime(2021, 11, 23, 17, 45)
_RULE_NAME = re.compile(r"[a-z][a-z0-9_]*")


class SpecError(ValueError):
    """A spec that cannot describe a data set; raised at construction so definitions fail to load.
    One line per problem, each naming the spec, the column and what is wrong."""


@dataclass(frozen=True)
class Column:
    """One column of the raw file and the rules every valid value obeys.

    `name` is the clean name used everywhere downstream; `raw_name` is the header text in the file
    when it differs (spaces, units, case: `Column("temperature", "float", raw_name="Temperature(C)")`).
    """

    name: str
    dtype: str  # one of DTYPES
    min: float | None = None
    max: float | None = None
    allowed: tuple | None = None  # allowed values; for "category" the declared levels, in order
    nullable: bool = False
    categorical: bool = False  # compared by frequencies (chi-squared), not by distribution
    period: int | None = None  # cyclic (hour of day, month): encoded as sin/cos so 23h is near 0h
    raw_name: str | None = None
    format: str | None = None  # strftime-style, for "date" and "timestamp" (e.g. "%d/%m/%Y")
    unit: str | None = None  # for display only
    encoding: str = "onehot"  # "category" features: one indicator per level, or the level's index
    true_false: tuple[str, str] = ("true", "false")  # "bool": the text of True and of False (any case)

    def __post_init__(self):
        # Text categories and booleans are compared by frequencies by nature; no flag to forget.
        if self.dtype in ("category", "bool"):
            object.__setattr__(self, "categorical", True)

    @property
    def header(self) -> str:
        """The column's name in the raw file."""
        return self.raw_name or self.name

    @property
    def date_format(self) -> str:
        return self.format or DEFAULT_FORMATS[self.dtype]

    @property
    def is_numeric(self) -> bool:
        return self.dtype in ("int", "float")

    @property
    def is_temporal(self) -> bool:
        return self.dtype in ("date", "timestamp")


@dataclass(frozen=True)
class SumRule:
    """`total == sum(parts)` on every row (e.g. cnt == casual + registered)."""

    total: str
    parts: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.total} == {' + '.join(self.parts)}"


@dataclass(frozen=True)
class BusinessFigure:
    """What forecast errors cost, in the use case's own words: `short` names the demand missed when the
    forecast is low, `idle` the supply put out for nothing when it is high, both per day in `unit`."""

    unit: str = "units"
    short: str = "short_per_day"
    idle: str = "idle_per_day"


@dataclass(frozen=True)
class Slice:
    """A named segment of rows on which model quality is reported and gated."""

    name: str
    column: str
    bins: tuple[float, ...] | None = None  # right-open bin edges; None means one slice per value
    labels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ConditionalRule:
    """`then` holds on every row where `when` holds, e.g. no rentals on a day the system is closed:
    `ConditionalRule("closed_means_no_rentals", when=("functioning_day", False), then=("count", "==", 0))`.
    """

    name: str  # snake case; shown in quarantine reasons as [conditional.<name>]
    when: tuple[str, object]  # (column, value): the rule applies where column == value
    then: tuple[str, str, object]  # (column, operator, value)

    @property
    def description(self) -> str:
        (w, wv), (t, op, tv) = self.when, self.then
        return f"{t} {op} {tv!r} when {w} == {wv!r}"


@dataclass(frozen=True)
class UseCaseSpec:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    target: str
    leakage: tuple[str, ...]
    event_date: str
    partition_start: date
    partition_end: date
    sum_rules: tuple[SumRule, ...] = ()
    ignored: tuple[str, ...] = ()  # carried through, never a feature (row ids)
    slices: tuple[Slice, ...] = ()
    expected_rows_per_partition: int = 24
    # Inputs whose distribution is compared day by day. Calendar columns (month, weekday, ...) are
    # fixed by the date, so a single day always "drifts" on them: they are left out.
    drift_columns: tuple[str, ...] = ()
    file_pattern: str = "{name}_{day}.csv"
    entity: str = ""  # singular name for asset keys ("rental_features"); defaults to `name`
    # The seasonal-naive forecast (the same key one period earlier) is the floor every model must beat.
    seasonal_period_days: int = 7
    business_figure: BusinessFigure = BusinessFigure()
    # Columns the label-free performance estimate must not learn from: they only say *when* a row is
    # (month, season, a slow seasonal cycle), and within one window they pick out a block of days.
    # A column name excludes every feature derived from it; a calendar feature is named
    # `<event_date>_<part>` (e.g. "date_month").
    estimator_excludes: tuple[str, ...] = ()
    encoding: str = "utf-8"  # of the raw files; must keep ASCII bytes as they are (utf-8, cp1252, latin-1)
    # Features derived from the event column, each as its value and sin/cos (see CALENDAR_PARTS).
    calendar: tuple[str, ...] = ()
    # Copies of a key: "quarantine" every extra copy, "keep_identical" (identical copies kept once),
    # "keep_last", or "aggregate" with a rule per column (AGGREGATIONS). Copies that disagree on a
    # column no rule settles are quarantined as a conflict under every policy but keep_last.
    duplicates: str = "quarantine"
    aggregate: tuple[tuple[str, str], ...] = ()  # (column, rule) pairs for duplicates="aggregate"
    # Day-level columns given on one row of the day: blanks take the day's single value.
    fill_over_day: tuple[str, ...] = ()
    conditional_rules: tuple[ConditionalRule, ...] = ()

    def __post_init__(self):
        if problems := spec_problems(self):
            raise SpecError("\n".join(f"spec {self.name!r}: {p}" for p in problems))

    def asset(self, what: str) -> str:
        """Asset key of a stage of this use case: `rental_features`, `rental_drift_report`, ..."""
        return f"{self.entity or self.name}_{what}"

    @property
    def event_column(self) -> Column:
        return self.column(self.event_date)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name}: no column {name!r}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def label_columns(self) -> tuple[str, ...]:
        """The outcome: the target and the leakage columns derived from it arrive together, days
        after the inputs, so a row has all of them or none (labels pending)."""
        return (self.target, *self.leakage)

    @property
    def input_columns(self) -> tuple[Column, ...]:
        """Columns a model may see: everything but the target, leakage, ids and the event date."""
        banned = {self.target, self.event_date, *self.leakage, *self.ignored}
        return tuple(c for c in self.columns if c.name not in banned)

    @property
    def calendar_features(self) -> tuple[str, ...]:
        """Names of the calendar features (each also gets `_sin`/`_cos`), e.g. `dteday_month`."""
        return tuple(f"{self.event_date}_{part}" for part in self.calendar)

    def file_name(self, day: str) -> str:
        return self.file_pattern.format(name=self.name, day=day)


def _format_problem(c: Column) -> str | None:
    """A date format must read back the date it writes (a timestamp format, the minute too)."""
    try:
        text = _FORMAT_PROBE.strftime(c.date_format)
        series = pl.Series([text])
        parsed = (series.str.to_date(c.date_format) if c.dtype == "date"
                  else series.str.to_datetime(c.date_format, time_unit="us")).item()
    except (ValueError, pl.exceptions.PolarsError) as err:
        return f"format {c.date_format!r} cannot be parsed ({str(err).splitlines()[0]})"
    expected = _FORMAT_PROBE.date() if c.dtype == "date" else _FORMAT_PROBE
    if parsed != expected:
        return f"format {c.date_format!r} does not read back {expected} (wrote {text!r}, read {parsed})"
    return None


def _column_problems(c: Column) -> list[str]:
    where = f"column {c.name!r}"
    if c.dtype not in DTYPES:
        return [f"{where}: unknown type {c.dtype!r} (known: {', '.join(DTYPES)})"]
    out = []
    if c.allowed is not None and not c.allowed:
        out.append(f"{where}: empty allowed set (leave `allowed` unset for no restriction)")
    if c.dtype == "category" and not c.allowed:
        out.append(f"{where}: a category column needs its levels declared in `allowed` "
                   "(levels learned from training are not supported)")
    if c.dtype == "category" and c.encoding not in CATEGORY_ENCODINGS:
        out.append(f"{where}: unknown category encoding {c.encoding!r} (known: {', '.join(CATEGORY_ENCODINGS)})")
    if c.is_temporal and (problem := _format_problem(c)):
        out.append(f"{where}: {problem}")
    if c.format is not None and not c.is_temporal:
        out.append(f"{where}: a format applies to date and timestamp columns, not {c.dtype}")
    if (c.min is not None or c.max is not None or c.period) and not c.is_numeric:
        out.append(f"{where}: min, max and period apply to int and float columns, not {c.dtype}")
    if c.min is not None and c.max is not None and c.min > c.max:
        out.append(f"{where}: min {c.min} is above max {c.max}")
    if c.dtype == "bool" and len({v.lower() for v in c.true_false}) != 2:
        out.append(f"{where}: true_false needs two different texts, got {c.true_false}")
    return out


def _unknown(spec: UseCaseSpec, what: str, names) -> list[str]:
    known = set(spec.column_names)
    return [f"column {n!r}: {what} is not a column of the spec" for n in names if n not in known]


def _duplicates_of(names) -> list[str]:
    seen: set[str] = set()
    return [n for n in names if n in seen or seen.add(n)]


def _rule_problems(spec: UseCaseSpec) -> list[str]:
    out = []
    for rule in spec.conditional_rules:
        (when, value), (then, op, _) = rule.when, rule.then
        if not _RULE_NAME.fullmatch(rule.name):
            out.append(f"column {then!r}: conditional rule name {rule.name!r} must be snake case")
        if op not in OPERATORS:
            out.append(f"column {then!r}: conditional rule {rule.name!r}: unknown operator {op!r} "
                       f"(known: {', '.join(OPERATORS)})")
        out += _unknown(spec, f"conditional rule {rule.name!r}", (when, then))
        if when in spec.column_names and (levels := spec.column(when).allowed) and value not in levels:
            out.append(f"column {when!r}: conditional rule {rule.name!r}: {value!r} is not one of {list(levels)}")
        if when in spec.column_names and spec.column(when).dtype == "bool" and not isinstance(value, bool):
            out.append(f"column {when!r}: conditional rule {rule.name!r}: a bool column is compared with True or "
                       f"False, not {value!r} (the file's words are read by `true_false`)")
    for rule in spec.sum_rules:
        out += _unknown(spec, f"sum rule {rule.name!r}", (rule.total, *rule.parts))
    return out


def _duplicate_policy_problems(spec: UseCaseSpec) -> list[str]:
    key = f"key columns {list(spec.key)}"
    if spec.duplicates not in DUPLICATE_POLICIES:
        return [f"{key}: unknown duplicate policy {spec.duplicates!r} (known: {', '.join(DUPLICATE_POLICIES)})"]
    if spec.aggregate and spec.duplicates != "aggregate":
        return [f"{key}: aggregate rules given but the duplicate policy is {spec.duplicates!r}"]
    out = _unknown(spec, "aggregate rule", (c for c, _ in spec.aggregate))
    for name, how in spec.aggregate:
        if how not in AGGREGATIONS:
            out.append(f"column {name!r}: unknown aggregate rule {how!r} (known: {', '.join(AGGREGATIONS)})")
        elif name in spec.key:
            out.append(f"column {name!r}: a key column is not aggregated")
        elif name in spec.column_names and how in ("mean", "sum") and not spec.column(name).is_numeric:
            out.append(f"column {name!r}: {how} needs a numeric column, not {spec.column(name).dtype}")
        elif name in spec.column_names and how == "mean" and spec.column(name).dtype == "int":
            out.append(f"column {name!r}: the mean of an int column is not an int; use sum or first")
    return out


def _encoding_problem(spec: UseCaseSpec) -> list[str]:
    try:
        codecs.lookup(spec.encoding)
    except LookupError:
        return [f"every column: unknown file encoding {spec.encoding!r}"]
    if "\n,\r".encode(spec.encoding) != b"\n,\r":
        return [f"every column: file encoding {spec.encoding!r} does not keep ',' and line ends as ASCII bytes"]
    return []


def _target_problems(spec: UseCaseSpec) -> list[str]:
    if spec.target not in spec.column_names:
        return [f"column {spec.target!r}: the target is not a column of the spec"]
    out = [] if spec.column(spec.target).is_numeric else [
        f"column {spec.target!r}: the target must be int or float, not {spec.column(spec.target).dtype}"]
    as_input = {"key": spec.key, "ignored": spec.ignored, "leakage": spec.leakage, "drift_columns": spec.drift_columns,
                "estimator_excludes": spec.estimator_excludes, "fill_over_day": spec.fill_over_day,
                "event_date": (spec.event_date,)}
    out += [f"column {spec.target!r}: the target is listed in {field}, which makes it an input or drops it"
            for field, names in as_input.items() if spec.target in names]
    return out


def _event_problems(spec: UseCaseSpec) -> list[str]:
    if spec.event_date not in spec.column_names:
        return [f"column {spec.event_date!r}: the event column is not a column of the spec"]
    event = spec.column(spec.event_date)
    if not event.is_temporal:
        return [f"column {spec.event_date!r}: the event column must be a date or timestamp, not {event.dtype}"]
    out = [f"column {spec.event_date!r}: unknown calendar part {p!r} (known: {', '.join(CALENDAR_PARTS)})"
           for p in spec.calendar if p not in CALENDAR_PARTS]
    if "hour" in spec.calendar and event.dtype == "date":
        out.append(f"column {spec.event_date!r}: calendar part 'hour' needs a timestamp event column, not a date")
    out += [f"column {c.name!r}: a {c.dtype} column cannot be a model input; make it the event column or ignored"
            for c in spec.input_columns if c.is_temporal]
    return out


def spec_problems(spec: UseCaseSpec) -> list[str]:
    """Every way the spec contradicts itself, one message per problem; empty when it is sound."""
    out = [p for c in spec.columns for p in _column_problems(c)]
    out += [f"column {n!r}: duplicate column name" for n in _duplicates_of(spec.column_names)]
    out += [f"column {n!r}: duplicate raw name in the header" for n in _duplicates_of(c.header for c in spec.columns)]
    out += _target_problems(spec) + _event_problems(spec)
    out += _unknown(spec, "key column", spec.key) + _unknown(spec, "leakage column", spec.leakage)
    out += _unknown(spec, "ignored column", spec.ignored) + _unknown(spec, "drift column", spec.drift_columns)
    out += _unknown(spec, "estimator exclude (a column or a calendar feature)",
                    (n for n in spec.estimator_excludes if n not in spec.calendar_features))
    out += _unknown(spec, "fill_over_day column", spec.fill_over_day)
    out += _unknown(spec, "slice column", (s.column for s in spec.slices))
    out += [f"column {s.column!r}: slice {s.name!r} needs bins, or a column with declared levels (`allowed`) or bool"
            for s in spec.slices if s.bins is None and s.column in spec.column_names
            and spec.column(s.column).allowed is None and spec.column(s.column).dtype != "bool"]
    out += [f"column {n!r}: a key column is filled over the day" for n in spec.fill_over_day if n in spec.key]
    return out + _rule_problems(spec) + _duplicate_policy_problems(spec) + _encoding_problem(spec)
