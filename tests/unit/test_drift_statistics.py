"""Each drift statistic agrees with an independent implementation (scipy or plain numpy)."""

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from ml.drift import build_reference, compare
from ml.drift.statistics import EPS, chi2_homogeneity, js_divergence, kl_divergence, psi

TOL = 1e-9


def _column_report(ref_values, cur_values, categorical=False, **kwargs):
    reference = build_reference(pl.DataFrame({"x": ref_values}), ["x"],
                                ["x"] if categorical else [], **kwargs)
    return reference, compare(reference, pl.DataFrame({"x": cur_values})).columns[0]


@pytest.mark.parametrize("kind", ["continuous", "ties", "disjoint"])
@pytest.mark.parametrize("sizes", [(2000, 24), (500, 3000), (20000, 20000)])
def test_ks_statistic_matches_scipy_ks_2samp_and_pvalue_is_close(kind, sizes):
    rng = np.random.default_rng(sizes[0] + sizes[1])
    if kind == "continuous":
        ref, cur = rng.normal(0, 1, sizes[0]), rng.normal(0.1, 1.2, sizes[1])
    elif kind == "ties":
        ref, cur = rng.integers(0, 24, sizes[0]) * 1.0, rng.integers(3, 24, sizes[1]) * 1.0
    else:
        ref, cur = rng.random(sizes[0]), rng.random(sizes[1]) + 2
    reference, row = _column_report(ref, cur, max_support=50_000)
    assert reference.columns["x"].sketch.exact_ks
    assert row.stats["ks"] == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=TOL)
    assert row.stats["wasserstein"] == pytest.approx(stats.wasserstein_distance(ref, cur) / ref.std(), abs=TOL)
    # display-only asymptotic p-value: within 0.02 of scipy's (exact below 10,000 rows)
    assert row.stats["ks_pvalue"] == pytest.approx(stats.ks_2samp(ref, cur).pvalue, abs=0.02)


def test_ks_on_a_quantile_grid_is_off_by_at_most_one_over_grid_size():
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(0, 1, 200_000), rng.normal(0.02, 1, 5000)
    reference, row = _column_report(ref, cur, max_support=500)
    assert not reference.columns["x"].sketch.exact_ks
    assert reference.columns["x"].sketch.support.size <= 500
    assert abs(row.stats["ks"] - stats.ks_2samp(ref, cur).statistic) <= 1 / 500


@pytest.mark.parametrize("offset", [0.0, 1e9])
def test_wasserstein_on_an_exact_support_matches_scipy_when_current_values_fall_between_its_points(offset):
    """A rounded reference and a continuous current: the current CDF crosses the reference's flat
    steps inside cells, which the per-cell sums alone would miss; large values keep their digits."""
    rng = np.random.default_rng(7)
    ref = offset + np.round(rng.normal(0, 1, 20_000), 1)
    for cur in (offset + rng.normal(0.1, 1.2, 3000), offset + rng.normal(0, 1, 500), offset + np.r_[-9.0, 9.0]):
        reference, row = _column_report(ref, cur)
        assert reference.columns["x"].sketch.exact_ks
        truth = stats.wasserstein_distance(ref - offset, cur - offset) / ref.std()
        assert row.stats["wasserstein"] == pytest.approx(truth, abs=TOL)


def _shortfall_bound(ref, cur, support):
    """Sum over the cells where F_ref - F_cur takes both signs of (reference + current mass) x width."""
    points = np.unique(np.r_[ref, cur])
    gap = (np.searchsorted(np.sort(ref), points, side="right") / ref.size
           - np.searchsorted(np.sort(cur), points, side="right") / cur.size)  # on [points[i], points[i + 1])
    cell = np.searchsorted(support, points[:-1], side="right")  # cell k is [x_(k-1), x_k)
    sign = lambda side: np.bincount(cell, side, support.size + 1) > 0  # noqa: E731
    both = sign(gap[:-1] > 0) & sign(gap[:-1] < 0)
    mass = lambda v: np.bincount(np.searchsorted(support, v), minlength=support.size + 1) / v.size  # noqa: E731
    width = np.diff(np.r_[points[0], support, points[-1]])
    return np.sum(((mass(ref) + mass(cur)) * width)[both])


def test_wasserstein_on_a_quantile_grid_falls_short_only_where_the_cdfs_cross_inside_a_cell():
    """Never above scipy's, and below it by at most the bound; small next to a real shift, while
    between two samples of one heavy-tailed distribution it can be much of a small distance (the
    calibration scores its windows with the same estimator, so the bars are set on it)."""
    rng = np.random.default_rng(8)
    outliers = lambda n, share: np.where(rng.random(n) < share, rng.normal(0, 50, n), rng.normal(0, 1, n))  # noqa: E731
    cases = [(rng.normal(0, 1, 200_000), rng.normal(0.02, 1, 5000), True),
             (rng.lognormal(0, 1, 100_000), rng.lognormal(0.1, 1, 100_000), True),
             (outliers(200_000, 0.005), outliers(20_000, 0.02), True),
             (outliers(200_000, 0.005), outliers(20_000, 0.005), False)]
    for ref, cur, shifted in cases:
        reference, row = _column_report(ref, cur, max_support=500)
        sketch = reference.columns["x"].sketch
        assert not sketch.exact_ks and sketch.support.size <= 500
        shortfall = stats.wasserstein_distance(ref, cur) / ref.std() - row.stats["wasserstein"]
        assert -TOL <= shortfall <= _shortfall_bound(ref, cur, sketch.support) / ref.std()
        assert shortfall < 0.001 or not shifted  # a 25th of the 0.025 floor


def test_wasserstein_of_a_constant_reference_is_undefined_and_the_others_judge_the_column():
    reference, row = _column_report(np.full(1000, 5.0), np.r_[np.full(900, 5.0), np.full(100, 6.0)])
    assert reference.columns["x"].sketch.std == 0 and np.isnan(row.stats["wasserstein"])
    assert row.drifted and "wasserstein" not in row.drifted_by


def test_chi2_and_pvalue_match_scipy_chi2_contingency_with_unseen_and_absent_categories():
    rng = np.random.default_rng(2)
    ref = rng.choice([1, 2, 3, 4], 5000, p=[0.6, 0.3, 0.09, 0.01])
    cur = rng.choice([1, 2, 3, 7], 800, p=[0.5, 0.3, 0.15, 0.05])  # 4 absent, 7 unseen
    _, row = _column_report(ref, cur, categorical=True)
    cats = [1, 2, 3, 4, 7]
    table = np.array([[np.sum(ref == c) for c in cats], [np.sum(cur == c) for c in cats]])
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert row.stats["chi2"] == pytest.approx(chi2, abs=TOL)
    assert row.stats["chi2_pvalue"] == pytest.approx(p, abs=TOL)


def test_chi2_on_two_categories_matches_uncorrected_scipy_and_chisquare_identity():
    table = np.array([[620, 380], [40, 60]])
    chi2, p, _, expected = stats.chi2_contingency(table, correction=False)
    ours, ours_p = chi2_homogeneity(table[0], table[1])
    assert ours == pytest.approx(chi2, abs=TOL) and ours_p == pytest.approx(p, abs=TOL)
    flat = stats.chisquare(table.ravel(), expected.ravel(), ddof=table.size - 1 - 1)
    assert ours == pytest.approx(flat.statistic, abs=TOL)


def test_psi_kl_js_match_direct_computation_including_empty_bins():
    rng = np.random.default_rng(3)
    for _ in range(50):
        p, q = rng.dirichlet(np.ones(10)), rng.dirichlet(np.ones(10))
        p[rng.integers(10)] = 0.0  # an empty bin on each side
        q[rng.integers(10)] = 0.0
        p, q = p / p.sum(), q / q.sum()
        fp, fq = [max(x, EPS) for x in p], [max(x, EPS) for x in q]
        direct_psi = sum((a - e) * math.log(a / e) for e, a in zip(fp, fq))
        direct_kl = sum(a * math.log(a / b) for a, b in zip(fp, fq))
        m = [(a + b) / 2 for a, b in zip(p, q)]
        direct_js = 0.5 * sum(a * math.log(a / c) for a, c in zip(p, m) if a > 0) + \
            0.5 * sum(b * math.log(b / c) for b, c in zip(q, m) if b > 0)
        assert psi(p, q) == pytest.approx(direct_psi, abs=TOL)
        assert kl_divergence(p, q) == pytest.approx(direct_kl, abs=TOL)
        assert js_divergence(p, q) == pytest.approx(direct_js, abs=TOL)
        assert js_divergence(p, q) == pytest.approx(jensenshannon(p, q) ** 2, abs=TOL)


def test_psi_and_js_of_a_report_match_numpy_histograms_on_the_stored_edges():
    rng = np.random.default_rng(4)
    ref, cur = rng.gamma(2.0, 0.1, 10_000), rng.gamma(2.0, 0.12, 300) + 0.05
    reference, row = _column_report(ref, cur)
    edges = reference.columns["x"].sketch.edges
    assert edges.size == 9 and np.all(np.diff(edges) > 0)
    bins = np.r_[-np.inf, edges, np.inf]
    # np.histogram bins are left-closed; ours are right-closed, so histogram the negated values
    hist = lambda x: np.histogram(-x, -bins[::-1])[0][::-1] / x.size  # noqa: E731
    p, q = hist(ref), hist(cur)
    direct = np.sum((np.maximum(q, EPS) - np.maximum(p, EPS)) *
                    np.log(np.maximum(q, EPS) / np.maximum(p, EPS)))
    assert row.stats["psi"] == pytest.approx(direct, abs=TOL)
    assert row.stats["js"] == pytest.approx(jensenshannon(p, q) ** 2, abs=TOL)


def test_categorical_psi_floors_an_unseen_category_at_epsilon():
    ref, cur = np.array([1] * 50 + [2] * 50), np.array([1] * 40 + [2] * 40 + [3] * 20)
    _, row = _column_report(ref, cur, categorical=True)
    expected = 2 * (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.2 - EPS) * math.log(0.2 / EPS)
    assert row.stats["psi"] == pytest.approx(expected, abs=TOL)


def test_out_of_range_share_counts_current_values_beyond_the_reference_min_and_max():
    rng = np.random.default_rng(6)
    ref = rng.uniform(0.2, 0.8, 5000)
    cur = np.r_[rng.uniform(0.2, 0.8, 85), [0.1] * 5, [0.9] * 10, ref.min(), ref.max(), [np.nan] * 3]
    reference, row = _column_report(ref, cur, max_support=500)  # a quantile grid still keeps the range
    assert (reference.columns["x"].sketch.low, reference.columns["x"].sketch.high) == (ref.min(), ref.max())
    assert row.stats["out_of_range"] == pytest.approx(15 / 102, abs=TOL)  # of the non-missing values
    _, categorical = _column_report([1, 2], [3, 4], categorical=True)
    assert np.isnan(categorical.stats["out_of_range"])  # numeric only
