"""Sketch a reference frame in one pass per column, and the grouping shared with measure.py.

Columns are sorted once (by the faster of numpy's and polars' sorts on this CPU) to get the KS support,
the quantile bin edges, the quantiles and the range; categorical columns are counted.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import polars as pl

from ml.drift.reference import (
    QUANTILES,
    CategoricalRef,
    ColumnRef,
    NumericRef,
    ReferenceStats,
    missing_mask,
)

T, R = TypeVar("T"), TypeVar("R")
# Below this many rows a column takes well under a millisecond: a thread would cost more than it saves.
PARALLEL_ROWS = 100_000


def per_column(fn: Callable[[T], R], items: Iterable[T], rows: int) -> list[R]:
    """`fn` over the columns, in order; one thread per core for large frames. Columns are independent
    and the work is numpy's and polars' sorts, searches and sums, which run without the GIL."""
    items = list(items)
    workers = min(len(items), os.cpu_count() or 1)
    if rows < PARALLEL_ROWS or workers < 2:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


@functools.cache
def _numpy_sorts_faster() -> bool:
    """Whether numpy's sort beats polars' on this CPU, timed once on 200,000 floats. Which one wins
    depends on the CPU: with AVX-512, numpy's vectorised sort took 6.4 ms a million floats against
    polars' 17.7 ms; on a CPU without, numpy took 66 ms against polars' 24 ms."""
    sample = pl.Series(np.random.default_rng(0).normal(size=200_000))

    def best(sort: Callable[[], object]) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            sort()
            times.append(time.perf_counter() - started)
        return min(times)

    return best(lambda: np.sort(sample.to_numpy())) < best(lambda: sample.sort(nulls_last=True).to_numpy())


def sorted_floats(series: pl.Series) -> np.ndarray:
    """The values as float64 in ascending order, missing ones (null, NaN) last as NaN, by the faster
    sort of this CPU (`_numpy_sorts_faster`) for a large column; below PARALLEL_ROWS the sort takes
    microseconds either way, and a daily report of a few rows does not pay the 40 ms timing."""
    floats = series.cast(pl.Float64)
    if series.len() < PARALLEL_ROWS or _numpy_sorts_faster():
        return np.sort(floats.to_numpy())  # null -> NaN, and numpy sorts NaN last
    return floats.sort(nulls_last=True).to_numpy()


@dataclass(frozen=True)
class Groups:
    """Rows split in groups: group g is rows `order[bounds[g]:bounds[g + 1]]`."""

    codes: np.ndarray | None  # group of each row, in [0, n); None: a single group
    order: np.ndarray | None  # stable row order that makes each group contiguous
    bounds: np.ndarray

    @classmethod
    def single(cls, n_rows: int) -> Groups:
        return cls(None, None, np.array([0, n_rows]))

    @classmethod
    def of(cls, codes: np.ndarray) -> Groups:
        n_groups = int(codes.max()) + 1 if codes.size else 0
        order = np.argsort(codes, kind="stable")
        return cls(codes, order, np.searchsorted(codes[order], np.arange(n_groups + 1)))

    @property
    def n(self) -> int:
        return self.bounds.size - 1

    def sorted(self, series: pl.Series) -> list[np.ndarray]:
        """Each group's values as float64, sorted (missing last, as NaN): one copy of the values,
        sorted in place by group."""
        if self.order is None:
            return [sorted_floats(series)]
        parts = np.split(series.cast(pl.Float64).to_numpy()[self.order], self.bounds[1:-1])
        for part in parts:
            part.sort()
        return parts


def value_counts(series: pl.Series,
                 groups: Groups) -> tuple[np.ndarray, list, np.ndarray, np.ndarray]:
    """(group, value, count, value-is-missing) of every distinct (group, value) pair.

    Small-range integers without nulls (the usual coded categorical) are counted with one
    numpy bincount, several times faster than a polars group-by on a million rows.
    """
    if series.dtype.is_integer() and series.len() and not series.has_nulls():
        v = series.to_numpy().astype(np.int64, copy=False)
        low, width = int(v.min()), int(v.max()) - int(v.min()) + 1
        if width <= 1 << 16:
            g = 0 if groups.codes is None else groups.codes
            counts = np.bincount(g * width + (v - low), minlength=groups.n * width)
            hit = np.flatnonzero(counts)
            return hit // width, (hit % width + low).tolist(), counts[hit], np.zeros(hit.size, bool)
    if groups.codes is None:
        pairs = series.rename("v").value_counts().rename({"count": "len"}).with_columns(g=0)
    else:
        pairs = pl.DataFrame({"g": groups.codes, "v": series}).group_by("g", "v").len()
    return (pairs["g"].to_numpy(), pairs["v"].to_list(), pairs["len"].to_numpy(),
            missing_mask(pairs["v"]))


def prefix_sums(u: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """sum(u[:p]) for each p of the SORTED `positions` (0 <= p <= u.size).

    One np.add.reduceat pass over the runs between distinct positions, each run's sum put at its
    last position: ~20x faster than np.cumsum on a million values, and no million-long output.
    """
    cuts = np.concatenate(([0], positions))
    last = np.append(cuts[1:] != cuts[:-1], True) & (cuts < u.size)
    runs = np.zeros(cuts.size)
    runs[last] = np.add.reduceat(u, cuts[last])
    return np.cumsum(runs)[:-1]


def sketch_numeric(series: pl.Series, n_bins: int, max_support: int) -> tuple[NumericRef, int]:
    """Bin edges, KS/Wasserstein support, quantiles, range and standard deviation of the present
    values, and the count of missing ones."""
    values = sorted_floats(series)
    v = values[: np.searchsorted(values, np.inf, side="right")]  # missing sorts last
    if v.size == 0:
        raise ValueError("numeric column has no non-missing reference value")
    last = np.flatnonzero(np.r_[v[1:] != v[:-1], True])  # last index of each distinct value
    if last.size <= max_support:
        support, cum = v[last], last + 1
    else:
        picks = np.ceil(np.arange(1, max_support + 1) * v.size / max_support).astype(np.int64) - 1
        support = np.unique(v[picks])
        cum = np.searchsorted(v, support, side="right")
    # inverted-CDF quantiles are reference values: the bins of a discrete column stay whole
    steps = np.linspace(0, 1, n_bins + 1)[1:-1]
    edges = np.unique(v[np.maximum(np.ceil(steps * v.size).astype(np.int64) - 1, 0)])
    bin_counts = np.diff(np.searchsorted(v, edges, side="right"), prepend=0, append=v.size)
    position = np.asarray(QUANTILES) * (v.size - 1)  # numpy's default "linear" quantiles
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, v.size - 1)
    values_at = v[low] + (position - low) * (v[high] - v[low])
    quantiles = dict(zip(map(str, QUANTILES), values_at.tolist()))
    # offsets from the median keep their digits for values ~ 1e9, and |mean - median| <= std
    center = quantiles["0.5"]
    if last.size <= max_support:  # the distinct values and their counts say it all
        offsets, weights = support - center, np.diff(cum, prepend=0)
        sums, square = np.cumsum(weights * offsets), weights @ offsets**2
    else:
        u = v - center
        sums, square = prefix_sums(u, cum), np.einsum("i,i", u, u)
    below = (support - center) * cum - sums  # cum[-1] = v.size: sums[-1] is the total
    std = np.sqrt(max(square / v.size - (sums[-1] / v.size) ** 2, 0.0))
    sketch = NumericRef(edges, bin_counts, support, cum, below, last.size <= max_support,
                        quantiles, float(v[0]), float(v[-1]), float(std))
    return sketch, values.size - v.size


def sketch_categorical(series: pl.Series) -> tuple[CategoricalRef, int]:
    """Category counts, most frequent first, and the missing count."""
    _, values, counts, missing = value_counts(series, Groups.single(series.len()))
    order = np.argsort(-counts[~missing], kind="stable")
    categories = [values[i] for i in np.flatnonzero(~missing)[order]]
    return CategoricalRef(categories, counts[~missing][order]), int(counts[missing].sum())


def summarise(frame: pl.DataFrame, columns: list[str], categorical: set[str], roles: dict[str, str],
              n_bins: int = 10, max_support: int = 1000) -> ReferenceStats:
    """Sketch each column once; thresholds start at the fixed fallbacks."""
    def column(name: str) -> ColumnRef:
        s = frame[name]
        if name in categorical:
            sketch, n_missing = sketch_categorical(s)
        else:
            sketch, n_missing = sketch_numeric(s, n_bins, max_support)
        return ColumnRef(name, roles.get(name, "feature"), s.len() - n_missing, n_missing, sketch)

    return ReferenceStats({ref.name: ref for ref in per_column(column, columns, frame.height)}, frame.height)
