"""Count a frame against a column's reference sketch, then score the counts.

Counting is split from scoring so one code path serves both the daily comparison (one group:
the current frame) and the calibration (one group per reference day, counted once; a resampled
window is a sum of day counts, scored against the reference counts minus its own).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ml.drift import statistics as st
from ml.drift.reference import ColumnRef, NumericRef
from ml.drift.sketch import Groups, prefix_sums, value_counts

STATISTICS = ("psi", "kl", "js", "ks", "ks_pvalue", "wasserstein", "chi2", "chi2_pvalue",
              "missing", "out_of_range")


def count(ref: ColumnRef, series: pl.Series, groups: Groups) -> dict:
    """Per-group counts of `series` on the reference bins / support / categories.

    Numeric values are sorted per group (fast) and the few reference points are searched in
    them, instead of searching a million unsorted values; numeric groups also get the sums the
    Wasserstein distance needs (`areas`). Unseen categories are appended to `cats` after the
    reference ones (zero reference count).
    """
    sketch = ref.sketch
    if isinstance(sketch, NumericRef):
        out = {key: [] for key in ("n", "missing", "le", "lt", "at_edges", "outside")}
        values = []
        for part in groups.sorted(series):
            v = part[: np.searchsorted(part, np.inf, side="right")]  # NaN (missing) sorts last
            values.append(v)
            out["n"].append(v.size)
            out["missing"].append(part.size - v.size)
            out["le"].append(np.searchsorted(v, sketch.support, side="right"))
            out["lt"].append(np.searchsorted(v, sketch.support, side="left"))
            out["at_edges"].append(np.searchsorted(v, sketch.edges, side="right"))
            out["outside"].append(np.searchsorted(v, sketch.low) + v.size
                                  - np.searchsorted(v, sketch.high, side="right"))
        counts = {key: np.array(value, dtype=np.int64) for key, value in out.items()}
        # one diff for all groups: np.diff with prepend/append costs ~40 us a call
        at_edges, n = counts.pop("at_edges"), counts["n"][:, None]
        counts["bins"] = np.diff(at_edges, axis=1, prepend=0, append=n)
        return {**counts, **areas(sketch, ref.n, values, counts)}
    g, values, counts, missing = value_counts(series, groups)
    index = {c: i for i, c in enumerate(sketch.categories)}
    for value, absent in zip(values, missing):
        if not absent:
            index.setdefault(value, len(index))
    codes = np.array([-1 if absent else index[v] for v, absent in zip(values, missing)], np.int64)
    cats = np.zeros((groups.n, len(index)), dtype=np.int64)
    np.add.at(cats, (g[~missing], codes[~missing]), counts[~missing])
    missing_counts = np.bincount(g[missing], counts[missing], groups.n).astype(np.int64)
    return {"n": cats.sum(axis=1), "missing": missing_counts, "cats": cats}


def areas(sketch: NumericRef, n_ref: int, values: list[np.ndarray], counts: dict) -> dict:
    """Per group, in reference standard deviations: `below`, the sum of (x_k - v) over v <= x_k;
    `above`, that of (v - x_last) over v > x_last; and `crossing` (see there). Like counts, they
    add up over groups.

    Groups whose values all sit on support points (every calibration day of an exact support)
    need only their counts there. Otherwise one np.add.reduceat pass over every group's sorted
    values, offset from the reference median so large values keep their digits.
    """
    center = sketch.quantiles["0.5"]
    x = sketch.support - center
    n, le, lt = counts["n"], counts["le"], counts["lt"]
    on_support = (le - lt).sum(axis=1) == n
    if on_support.all():
        below = x * le - np.cumsum((le - lt) * x, axis=1)  # le - lt: the rows at each point
        return {"below": below / sketch.unit, "above": np.zeros(n.size),
                "crossing": np.zeros(n.size)}
    u = (values[0] if len(values) == 1 else np.concatenate(values)) - center
    start = np.cumsum(n) - n
    positions = np.column_stack([start, start[:, None] + le, start + n])  # sorted, row by row
    sums = prefix_sums(u, positions.ravel()).reshape(positions.shape)
    sums = sums[:, 1:] - sums[:, :1]  # within each group
    crossings = np.zeros(n.size)
    if sketch.exact_ks:  # only values between support points can cross a flat step
        for g in np.flatnonzero(~on_support):
            crossings[g] = crossing(sketch, n_ref, u[start[g]:start[g] + n[g]], le[g], lt[g])
    return {"below": (x * le - sums[:, :-1]) / sketch.unit,
            "above": (sums[:, -1] - sums[:, -2] - x[-1] * (n - le[:, -1])) / sketch.unit,
            "crossing": crossings / sketch.unit}


def crossing(sketch: NumericRef, n_ref: int, u: np.ndarray, le: np.ndarray,
             lt: np.ndarray) -> float:
    """What |integral of F_ref - F_cur| per cell (statistics.wasserstein) misses, times rows.

    On an exact support F_ref is flat inside a cell, at its left end's level R; where the current
    (sorted offsets `u` from the reference median) crosses R inside the cell, at the value of rank
    ceil(R n), the cell's integral I splits into A before (F_ref above) and A - I after: W1 counts
    A + |A - I| where the per-cell sum has |I|, so the gap is 2 min(A, A - I). Zero when every
    value sits on a support point (each calibration day of an exact support), so day sums stay
    right; on a grid F_ref is unknown inside a cell, so `areas` leaves it out there.
    """
    n = u.size
    level = sketch.cum_counts[:-1] * n  # R n_ref n at each cell's left end
    k = np.flatnonzero((le[:-1] * n_ref < level) & (level < lt[1:] * n_ref))
    if k.size == 0:
        return 0.0
    start, stop, rank = le[k], lt[k + 1], -(-level[k] // n_ref)  # rank: ceil(R n)
    x = sketch.support - sketch.quantiles["0.5"]
    a, b, cross = x[k], x[k + 1], u[rank - 1]
    # start <= rank - 1 < stop <= the next cell's start: interleaved, the positions are sorted
    positions = np.stack([start, rank - 1, stop], axis=1).ravel()
    at_start, at_cross, at_stop = prefix_sums(u, positions).reshape(-1, 3).T
    excess = level[k] / n_ref - start  # (R - F_cur(a)) n
    before = (cross - a) * excess - ((rank - 1 - start) * cross - (at_cross - at_start))  # A n
    whole = (b - a) * excess - ((stop - start) * b - (at_stop - at_start))  # I n
    return float(2 * np.minimum(before, before - whole).sum())


def reference_counts(ref: ColumnRef) -> dict:
    """The reference's own counts, in the same layout as `count` (no group axis)."""
    out = {"n": np.int64(ref.n), "missing": np.int64(ref.n_missing)}
    if isinstance(ref.sketch, NumericRef):
        return {**out, "le": ref.sketch.cum_counts, "bins": ref.sketch.bin_counts,
                "outside": np.int64(0), "below": ref.sketch.below / ref.sketch.unit,
                "above": np.float64(0)}  # the support ends at the reference maximum
    return {**out, "cats": ref.sketch.counts}


def score(ref: dict, cur: dict, pvalues: bool = True) -> dict[str, np.ndarray]:
    """Every statistic of current vs reference counts, one value per group (NaN if n/a).

    `missing` is the signed change of missing rate (current - reference); `wasserstein` the W1
    distance in reference standard deviations (numeric only); `out_of_range` the share of current
    values outside the reference [min, max], where trees predict flat (numeric only, display).
    `pvalues=False` skips the never decisive KS and chi-squared p-values, e.g. when calibrating.
    """
    n_cur = cur["n"].astype(np.float64)
    nan = np.full(n_cur.shape, np.nan)
    out = dict.fromkeys(STATISTICS, nan)
    rate = lambda c: c["missing"] / np.maximum(c["n"] + c["missing"], 1)  # noqa: E731
    out["missing"] = rate(cur) - rate(ref)
    if "bins" in cur:
        p, q = st.proportions(ref["bins"]), st.proportions(cur["bins"])
        n_ref = np.asarray(ref["n"], dtype=np.float64)
        per_ref, per_cur = np.maximum(n_ref, 1), np.maximum(n_cur, 1)
        ref_cdf = ref["le"] / per_ref[..., None]
        scale = per_cur[:, None]
        out["ks"] = st.ks_statistic(ref_cdf, cur["le"] / scale, cur["lt"] / scale)
        cells = st.wasserstein(ref["below"] / per_ref[..., None], cur["below"] / scale,
                               ref["above"] / per_ref, cur["above"] / per_cur)
        out["wasserstein"] = cells + cur["crossing"] / per_cur
        out["out_of_range"] = cur["outside"] / per_cur
        if pvalues:
            out["ks_pvalue"] = st.ks_pvalue(out["ks"], n_ref, n_cur)
    else:
        ref_cats = np.asarray(ref["cats"])
        unseen = cur["cats"].shape[-1] - ref_cats.shape[-1]  # categories new in current
        ref_cats = np.pad(ref_cats, [(0, 0)] * (ref_cats.ndim - 1) + [(0, unseen)])
        p, q = st.proportions(ref_cats), st.proportions(cur["cats"])
        chi2, chi2_pvalue = st.chi2_homogeneity(ref_cats, cur["cats"])
        out.update(chi2=chi2, chi2_pvalue=chi2_pvalue if pvalues else nan)
    out.update(psi=st.psi(p, q), kl=st.kl_divergence(p, q), js=st.js_divergence(p, q))
    empty = n_cur == 0
    return {k: v if k == "missing" else np.where(empty, np.nan, v) for k, v in out.items()}
