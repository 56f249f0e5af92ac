"""The use-case spec: the single place that describes a data set.

Contracts, features, slices and partitioning are derived from a `UseCaseSpec`; adding a use case
means writing a new spec, not copying the graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Column:
    """One column of the raw file and the rules every valid value obeys."""

    name: str
    dtype: str  # "int", "float", "date"
    min: float | None = None
    max: float | None = None
    allowed: tuple[int, ...] | None = None
    nullable: bool = False
    categorical: bool = False  # compared by frequencies (chi-squared), not by distribution
    period: int | None = None  # cyclic (hour of day, month): encoded as sin/cos so 23h is near 0h

    @property
    def is_numeric(self) -> bool:
        return self.dtype in ("int", "float")


@dataclass(frozen=True)
class SumRule:
    """`total == sum(parts)` on every row (e.g. cnt == casual + registered)."""

    total: str
    parts: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.total} == {' + '.join(self.parts)}"


@dataclass(frozen=True)
class Slice:
    """A named segment of rows on which model quality is reported and gated."""

    name: str
    column: str
    bins: tuple[float, ...] | None = None  # right-open bin edges; None means one slice per value
    labels: tuple[str, ...] | None = None


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
    # Columns the label-free performance estimate must not learn from: they only say *when* a row is
    # (month, season, a slow seasonal cycle), and within one window they pick out a block of days.
    estimator_excludes: tuple[str, ...] = ()

    def asset(self, what: str) -> str:
        """Asset key of a stage of this use case: `rental_features`, `rental_drift_report`, ..."""
        return f"{self.entity or self.name}_{what}"

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

    def file_name(self, day: str) -> str:
        return self.file_pattern.format(name=self.name, day=day)
