"""Reference statistics: everything daily drift needs, computed once from the training frame.

`ReferenceStats` is plain data (numpy arrays in memory, lists in `to_dict`) so it can be stored
as a versioned JSON artifact; comparing a current frame never rescans the reference rows.

KS needs the reference empirical CDF. It is kept on the distinct reference values with their
cumulative counts, which is exact and small for the bike columns (at most a few hundred distinct
values each). A column with more than `max_support` distinct values (default 1,000) keeps the
CDF on a grid of `max_support` reference quantiles instead: 3 x 8 bytes per point in memory
(with `below`, ~24 KB a column, vs 8 MB for 1M sorted floats) and the KS statistic is then off
by at most 1 / max_support = 0.001, the reference mass between two grid points (asserted in the
tests), a tenth of the smallest KS bar; calibrating hundreds of windows costs in proportion to
the grid.

The Wasserstein-1 distance needs where the mass sits, not only how much lies below each point:
`below[k]`, the sum of (support[k] - v) over reference values v <= support[k] (the integral of the
cumulative count up to support[k]), fixes the integral of F_ref over every cell between support
points, and the standard deviation normalises it (W1 in reference standard deviations, as
Evidently's "Wasserstein distance (normed)"). The support always ends at the reference maximum,
so nothing lies beyond it; the mass below a grid's first point is in `below[0]`. On an exact
support the distance equals scipy's; on a grid it can only fall short, where the two CDFs cross
inside a cell (statistics.wasserstein; bounded in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

FORMAT_VERSION = 3  # 3: `below` and `std` per numeric column, for the Wasserstein distance
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
# Effect sizes that decide drift, per column kind (p-values never do).
DECISIVE = {"numeric": ("psi", "js", "ks", "wasserstein", "missing"),
            "categorical": ("psi", "js", "missing")}
# Used when the reference has too few days to resample windows from (see calibration.py);
# wasserstein (in reference standard deviations): Evidently's default bar.
FALLBACK_THRESHOLDS = {"psi": 0.2, "js": 0.1, "ks": 0.15, "wasserstein": 0.1, "missing": 0.05}


@dataclass
class NumericRef:
    edges: np.ndarray  # interior PSI/JS bin edges; bins (-inf, e0], (e0, e1], ..., (e_last, inf)
    bin_counts: np.ndarray
    support: np.ndarray  # sorted points where the reference CDF is known
    cum_counts: np.ndarray  # reference rows <= support[k]
    below: np.ndarray  # sum of support[k] - v over reference values v <= support[k]
    exact_ks: bool  # support holds every distinct value, so KS and Wasserstein equal scipy's
    quantiles: dict[str, float]
    low: float  # smallest and largest reference values: trees extrapolate flat beyond them
    high: float
    std: float  # population standard deviation (ddof 0)
    kind: str = "numeric"

    @property
    def unit(self) -> float:
        """The Wasserstein distance's unit, the std; NaN for a constant column (KS and PSI judge it)."""
        return self.std if self.std > 0 else np.nan


@dataclass
class CategoricalRef:
    categories: list  # JSON scalars (int, float, str, bool)
    counts: np.ndarray
    kind: str = "categorical"


@dataclass
class ColumnRef:
    name: str
    role: str  # "feature" | "prediction" | "target"
    n: int  # non-missing reference rows
    n_missing: int
    sketch: NumericRef | CategoricalRef
    thresholds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for stat in DECISIVE[self.sketch.kind]:
            self.thresholds.setdefault(stat, FALLBACK_THRESHOLDS[stat])

    @property
    def missing_rate(self) -> float:
        return self.n_missing / max(self.n + self.n_missing, 1)


@dataclass
class ReferenceStats:
    columns: dict[str, ColumnRef]
    n_rows: int
    n_days: int = 0  # reference days the thresholds were calibrated on; 0 means fallbacks
    window_days: int = 0  # size of the resampled windows, the size of the windows to be judged
    n_resamples: int = 0
    threshold_rule: str = "fallback"
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        """JSON-able dict (arrays become lists)."""
        def plain(value):
            if isinstance(value, np.ndarray):
                return value.tolist()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        cols = {name: {**{k: plain(v) for k, v in vars(c).items() if k != "sketch"},
                       "sketch": plain(vars(c.sketch))} for name, c in self.columns.items()}
        return {**{k: v for k, v in vars(self).items() if k != "columns"}, "columns": cols}

    @classmethod
    def from_dict(cls, data: dict) -> ReferenceStats:
        if data["format_version"] != FORMAT_VERSION:
            raise ValueError(
                f"ReferenceStats format {data['format_version']} != {FORMAT_VERSION}: rebuild it "
                "from its reference frame with build_reference (a sketch cannot be converted: "
                "format 2 lacks the sums the Wasserstein distance needs)")
        columns = {}
        for name, c in data["columns"].items():
            s = dict(c["sketch"])
            if s["kind"] == "numeric":
                arrays = {k: np.asarray(s[k], dtype=np.float64) for k in ("edges", "support", "below")}
                ints = {k: np.asarray(s[k], dtype=np.int64) for k in ("bin_counts", "cum_counts")}
                sketch = NumericRef(**{**s, **arrays, **ints})
            else:
                sketch = CategoricalRef(s["categories"], np.asarray(s["counts"], dtype=np.int64))
            columns[name] = ColumnRef(**{**c, "sketch": sketch})
        return cls(**{**data, "columns": columns})


def missing_mask(series: pl.Series) -> np.ndarray:
    """Null, or NaN for float columns."""
    mask = series.is_null()
    if series.dtype.is_float():
        mask = mask | series.is_nan().fill_null(True)
    return mask.to_numpy()
