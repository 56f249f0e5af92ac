"""Synthetic rental days built from the shipped file, for load tests and drift/fault drills.

Rows are real hours resampled from the same time of year and the same hour of day, so joint
structure (weather vs. demand, casual vs. registered) survives; small noise makes them new rows.
Knobs inject the failures the pipeline must catch: covariate shift, label shift, missing cells and,
at the CSV level, malformed rows.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl

from ml.spec import Column, UseCaseSpec

SHIPPED_CSV = Path(__file__).resolve().parents[1] / "data" / "bike_sharing_hourly.csv"
_POLARS_TYPES = {"int": pl.Int64, "float": pl.Float64, "date": pl.Date}
_DATE_FORMAT = "%Y-%m-%d"
_NON_NUMERIC = "n/a?"


@dataclass(frozen=True)
class Reference:
    """Real rows to resample, the decimals each float column is written with, and the row ids."""

    frame: pl.DataFrame
    decimals: dict[str, int]
    row_ids: tuple[str, ...]  # int columns unique on every real row: renumbered, never resampled


def load_reference(spec: UseCaseSpec, path: Path = SHIPPED_CSV) -> Reference:
    """Read the shipped CSV typed as the spec says; decimals and row ids are measured, not assumed."""
    raw = pl.read_csv(path, infer_schema=False)
    frame = _typed(spec, raw)
    decimals = {
        c.name: int(raw[c.name].str.split(".").list.get(1, null_on_oob=True).str.len_chars().max() or 0)
        for c in spec.columns
        if c.dtype == "float"
    }
    row_ids = tuple(
        c.name for c in spec.columns if c.dtype == "int" and frame[c.name].n_unique() == frame.height
    )
    return Reference(frame, decimals, row_ids)


def _typed(spec: UseCaseSpec, frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        pl.col(c.name).str.to_date(_DATE_FORMAT)
        if c.dtype == "date"
        else pl.col(c.name).cast(_POLARS_TYPES[c.dtype])
        for c in spec.columns
    )


def _hour_column(spec: UseCaseSpec) -> str:
    """The key column that is not the date: rows cycle through its values."""
    (hour,) = (k for k in spec.key if k != spec.event_date)
    return hour


def _count_leaves(spec: UseCaseSpec) -> tuple[str, ...]:
    """Counts drawn directly; sum-rule totals are recomputed from them so the rule always holds."""
    totals = {r.total for r in spec.sum_rules}
    names = [spec.target, *(p for r in spec.sum_rules for p in r.parts)]
    return tuple(dict.fromkeys(n for n in names if n not in totals))


def _clip(col: Column, values: np.ndarray) -> np.ndarray:
    lo = col.min if col.allowed is None else min(col.allowed)
    hi = col.max if col.allowed is None else max(col.allowed)
    return np.clip(values, lo if lo is not None else -np.inf, hi if hi is not None else np.inf)


def _snap_to_allowed(col: Column, values: np.ndarray) -> np.ndarray:
    allowed = np.asarray(col.allowed)
    return allowed[np.abs(values[:, None] - allowed[None, :]).argmin(axis=1)]


def _sample_rows(ref: pl.DataFrame, spec: UseCaseSpec, day: date, n_rows: int, window_days: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Reference row index for each output row: same hour, within `window_days` of the same date."""
    hour = _hour_column(spec)
    doy = ref[spec.event_date].dt.ordinal_day().to_numpy()
    gap = np.abs(doy - day.timetuple().tm_yday)
    near = np.minimum(gap, 366 - gap) <= window_days
    ref_hours = ref[hour].to_numpy()
    hours = np.unique(ref_hours)
    idx = np.empty(n_rows, dtype=np.int64)
    for i, h in enumerate(hours):
        candidates = np.flatnonzero(near & (ref_hours == h))
        if candidates.size == 0:
            raise ValueError(f"no reference rows for {hour}={h} within {window_days} days of {day}")
        slots = slice(i, n_rows, hours.size)
        idx[slots] = candidates[rng.integers(0, candidates.size, size=idx[slots].size)]
    return idx


def generate_rentals(
    spec: UseCaseSpec,
    day: date,
    n_rows: int,
    seed: int,
    *,
    covariate_shift: dict[str, float] | None = None,
    label_shift: float = 1.0,
    missing_rate: float = 0.0,
    noise: float = 0.03,
    window_days: int = 15,
    reference: Reference | None = None,
) -> pl.DataFrame:
    """One synthetic day of `n_rows` rows with the spec's columns and types.

    The hour column cycles through its values; every other column comes from a real row of the same
    hour within `window_days` of `day`'s date in any year (so the season matches), except the event
    date (set to `day`) and the row id (1..n_rows). Float features get Gaussian noise of
    `noise` x their range, counts a log-normal factor of sigma `noise`; all stay inside the spec's
    bounds. `covariate_shift` adds a delta to input columns (clipped, rounded and snapped to allowed
    values) without touching counts: the drift a monitor must flag. `label_shift` multiplies the
    counts. `missing_rate` blanks that share of cells in the non-key input columns.
    """
    ref = reference or load_reference(spec)
    rng = np.random.default_rng(seed)
    idx = _sample_rows(ref.frame, spec, day, n_rows, window_days, rng)
    shift = covariate_shift or {}
    shiftable = {c.name for c in spec.input_columns} - set(spec.key)
    if unknown := set(shift) - shiftable:
        raise ValueError(f"covariate_shift applies to {sorted(shiftable)}, not {sorted(unknown)}")

    columns: dict[str, np.ndarray | pl.Series] = {}
    for col in spec.columns:
        if col.name == spec.event_date:
            columns[col.name] = pl.repeat(day, n_rows, dtype=pl.Date, eager=True)
        elif col.name in ref.row_ids:
            columns[col.name] = np.arange(1, n_rows + 1)
        else:
            values = ref.frame[col.name].to_numpy()[idx]
            delta = shift.get(col.name)
            columns[col.name] = _perturb(spec, ref, col, values, delta, label_shift, noise, rng)
    frame = pl.DataFrame(columns)
    for rule in spec.sum_rules:
        frame = frame.with_columns(pl.sum_horizontal(rule.parts).alias(rule.total))
    frame = frame.select(pl.col(c.name).cast(_POLARS_TYPES[c.dtype]) for c in spec.columns)
    return _blank(frame, spec, missing_rate, rng) if missing_rate > 0 else frame


def _perturb(spec: UseCaseSpec, ref: Reference, col: Column, values: np.ndarray, delta: float | None,
             label_shift: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Noise, shifts and bounds for one resampled column; the hour column passes through untouched."""
    n = values.size
    counts = col.name in _count_leaves(spec)
    if col.name == _hour_column(spec):
        return values
    if col.dtype == "float":
        values = values + rng.normal(0.0, noise * (col.max - col.min), n)
    elif counts:
        values = values * label_shift * np.exp(rng.normal(0.0, noise, n))
    if delta is not None:
        values = values + delta
    if col.dtype == "int" and (counts or delta is not None):
        values = np.rint(values)
    if col.allowed is not None and delta is not None:
        values = _snap_to_allowed(col, values)
    values = _clip(col, values)
    return np.round(values, ref.decimals[col.name]) if col.dtype == "float" else values


def _blank(
    frame: pl.DataFrame, spec: UseCaseSpec, rate: float, rng: np.random.Generator
) -> pl.DataFrame:
    """Null out `rate` of the cells in every non-key input column, independently per cell."""
    targets = [c.name for c in spec.input_columns if c.name not in spec.key]
    return frame.with_columns(
        pl.when(pl.lit(rng.random(frame.height, dtype=np.float32) < rate))
        .then(None)
        .otherwise(pl.col(name))
        .alias(name)
        for name in targets
    )


class CsvPayload(NamedTuple):
    """CSV bytes plus how many rows of each fault kind were injected: the validator's answer key."""

    data: bytes
    malformed: dict[str, int]

    @property
    def n_malformed(self) -> int:
        return sum(self.malformed.values())


MALFORMED_KINDS = ("non_numeric", "below_min", "broken_sum", "truncated")


def to_csv_bytes(
    spec: UseCaseSpec, frame: pl.DataFrame, *, malformed_rate: float = 0.0, seed: int = 0
) -> CsvPayload:
    """Write `frame` like the shipped file: same header, ISO dates, float text, LF endings; nulls empty.

    `round(malformed_rate * height)` distinct rows are corrupted, one fault each, kinds drawn at
    random: a non-numeric token in a numeric column, a value below its column minimum, a sum-rule
    total off by one, or a row missing its last field. Same seed, same bytes.
    """
    rng = np.random.default_rng(seed)
    kinds = [k for k in MALFORMED_KINDS if k != "broken_sum" or spec.sum_rules]
    rows = rng.choice(frame.height, size=round(malformed_rate * frame.height), replace=False)
    kind_of_row = rng.integers(0, len(kinds), size=rows.size)
    cells = {c.name: _as_text(c, frame[c.name]) for c in spec.columns}
    numeric = [c for c in spec.columns if c.is_numeric]
    bounded = [c for c in numeric if c.min is not None]

    def corrupt(at: np.ndarray, columns: list[Column], text) -> None:
        picks = rng.integers(0, len(columns), size=at.size)
        for i, col in enumerate(columns):
            where = at[picks == i]
            cells[col.name] = cells[col.name].scatter(where, text(col, where))

    corrupt(rows[kind_of_row == kinds.index("non_numeric")], numeric,
            lambda col, where: [_NON_NUMERIC] * where.size)
    corrupt(rows[kind_of_row == kinds.index("below_min")], bounded,
            lambda col, where: _as_text(col, pl.Series([col.min - 1] * where.size)))
    if spec.sum_rules:
        totals = [spec.column(r.total) for r in spec.sum_rules]
        corrupt(rows[kind_of_row == kinds.index("broken_sum")], totals,
                lambda col, where: _as_text(col, frame[col.name].gather(where) + 1))
    truncated = np.zeros(frame.height, dtype=bool)
    truncated[rows[kind_of_row == kinds.index("truncated")]] = True

    *head, last = spec.column_names
    lines = pl.DataFrame(cells).select(
        pl.when(pl.lit(truncated))
        .then(pl.concat_str(head, separator=","))
        .otherwise(pl.concat_str([*head, last], separator=","))
        .alias(",".join(spec.column_names))  # the one column's name is the header line
    )
    buffer = io.BytesIO()
    lines.write_csv(buffer, quote_style="never")
    counts = {k: int((kind_of_row == i).sum()) for i, k in enumerate(kinds)}
    return CsvPayload(buffer.getvalue(), counts)


def _as_text(col: Column, values: pl.Series) -> pl.Series:
    """Text as the shipped file writes it: ISO dates, "0" not "0.0", empty for null."""
    if col.dtype == "date":
        text = values.dt.to_string(_DATE_FORMAT)
    elif col.dtype == "float":
        text = values.cast(pl.Float64).cast(pl.String).str.strip_suffix(".0")
    else:
        text = values.cast(pl.Int64).cast(pl.String)
    return text.fill_null("")
