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
from ml.drift.sketch import Groups, value_counts

STATISTICS = ("psi", "kl", "js", "ks", "ks_pvalue", "chi2", "chi2_pvalue", "missing",
              "out_of_range")


def count(ref: ColumnRef, series: pl.Series, groups: Groups) -> dict:
    """Per-group counts of `series` on the reference bins / support / categories.

    Numeric values are sorted per group (fast) and the few reference points are searched in
    them, instead of searching a million unsorted values. Unseen categories are appended to
    `cats` after the reference ones (zero reference count).
    """
    sketch = ref.sketch
    if isinstance(sketch, NumericRef):
        out = {key: [] for key in ("n", "missing", "le", "lt", "bins", "outside")}
        for part in groups.split(series.cast(pl.Float64).to_numpy()):
            v = np.sort(part)  # NaN (missing) sorts last
            v = v[: np.searchsorted(v, np.inf, side="right")]
            out["n"].append(v.size)
            out["missing"].append(part.size - v.size)
            out["le"].append(np.searchsorted(v, sketch.support, side="right"))
            out["lt"].append(np.searchsorted(v, sketch.support, side="left"))
            out["bins"].append(np.diff(np.searchsorted(v, sketch.edges, side="right"),
                                       prepend=0, append=v.size))
            out["outside"].append(np.searchsorted(v, sketch.low) + v.size
                                  - np.searchsorted(v, sketch.high, side="right"))
        return {key: np.array(value, dtype=np.int64) for key, value in out.items()}
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


def reference_counts(ref: ColumnRef) -> dict:
    """The reference's own counts, in the same layout as `count` (no group axis)."""
    out = {"n": np.int64(ref.n), "missing": np.int64(ref.n_missing)}
    if isinstance(ref.sketch, NumericRef):
        return {**out, "le": ref.sketch.cum_counts, "bins": ref.sketch.bin_counts,
                "outside": np.int64(0)}
    return {**out, "cats": ref.sketch.counts}


def score(ref: dict, cur: dict, pvalues: bool = True) -> dict[str, np.ndarray]:
    """Every statistic of current vs reference counts, one value per group (NaN if n/a).

    `missing` is the signed change of missing rate (current - reference); `out_of_range` the
    share of current values outside the reference [min, max], where trees predict flat (numeric
    only, display). `pvalues=False` skips the never decisive KS and chi-squared p-values, e.g.
    when calibrating.
    """
    n_cur = cur["n"].astype(np.float64)
    nan = np.full(n_cur.shape, np.nan)
    out = dict.fromkeys(STATISTICS, nan)
    rate = lambda c: c["missing"] / np.maximum(c["n"] + c["missing"], 1)  # noqa: E731
    out["missing"] = rate(cur) - rate(ref)
    if "bins" in cur:
        p, q = st.proportions(ref["bins"]), st.proportions(cur["bins"])
        n_ref = np.asarray(ref["n"], dtype=np.float64)
        ref_cdf = ref["le"] / np.maximum(n_ref, 1)[..., None]
        scale = np.maximum(n_cur, 1)[:, None]
        out["ks"] = st.ks_statistic(ref_cdf, cur["le"] / scale, cur["lt"] / scale)
        out["out_of_range"] = cur["outside"] / np.maximum(n_cur, 1)
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
