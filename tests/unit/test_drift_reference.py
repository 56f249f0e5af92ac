"""ReferenceStats: sketches, JSON round trip, out-of-fold calibration of thresholds."""

import json

import numpy as np
import polars as pl
import pytest
from scipy import stats

from ml.drift import ReferenceStats, build_reference, chunk_statistics, compare
from ml.drift.calibration import FLOORS
from ml.drift.reference import FALLBACK_THRESHOLDS
from ml.drift.statistics import js_divergence, psi


def _chunked_frame(n_chunks=10, rows=400, odd_chunk=3, seed=0):
    """Stationary chunks except `odd_chunk`, whose x is shifted by +1."""
    rng = np.random.default_rng(seed)
    chunk = np.repeat(np.arange(n_chunks), rows)
    x = rng.normal(0, 1, chunk.size) + (chunk == odd_chunk)
    c = rng.choice(["a", "b", "c"], chunk.size, p=[0.5, 0.3, 0.2])
    return pl.DataFrame({"chunk": chunk, "x": np.round(x, 2), "c": c})


def test_out_of_fold_ks_equals_scipy_between_each_chunk_and_the_rest():
    frame = _chunked_frame()
    reference = build_reference(frame, ["x"], chunk_column="chunk")
    ks = chunk_statistics(reference, frame, "chunk")["x"]["ks"]
    for c in range(10):
        inside, rest = frame.filter(pl.col("chunk") == c), frame.filter(pl.col("chunk") != c)
        assert ks[c] == pytest.approx(stats.ks_2samp(rest["x"], inside["x"]).statistic, abs=1e-9)


def test_out_of_fold_psi_and_js_exclude_the_chunk_from_the_reference_frequencies():
    frame = _chunked_frame()
    reference = build_reference(frame, ["x", "c"], ["c"], chunk_column="chunk")
    oof = chunk_statistics(reference, frame, "chunk")
    edges = reference.columns["x"].sketch.edges
    share = lambda x: np.bincount(np.searchsorted(edges, x), minlength=edges.size + 1) / x.size  # noqa: E731
    for c in (0, 3):
        inside, rest = frame.filter(pl.col("chunk") == c), frame.filter(pl.col("chunk") != c)
        p, q = share(rest["x"].to_numpy()), share(inside["x"].to_numpy())
        assert oof["x"]["psi"][c] == pytest.approx(psi(p, q), abs=1e-9)
        assert oof["x"]["js"][c] == pytest.approx(js_divergence(p, q), abs=1e-9)
    in_sample = compare(reference, frame.filter(pl.col("chunk") == 3)).columns[0].stats["psi"]
    assert oof["x"]["psi"][3] > in_sample  # the odd chunk does not vouch for itself


def test_thresholds_are_margin_times_the_95th_percentile_of_chunk_statistics():
    frame = _chunked_frame(n_chunks=30, odd_chunk=-1)
    reference = build_reference(frame, ["x", "c"], ["c"], chunk_column="chunk")
    oof = chunk_statistics(reference, frame, "chunk")
    for column, stat in [("x", "psi"), ("x", "ks"), ("c", "js")]:
        expected = max(FLOORS[stat], 1.2 * np.quantile(np.abs(oof[column][stat]), 0.95))
        assert reference.columns[column].thresholds[stat] == pytest.approx(expected)
    assert reference.n_chunks == 30


def test_fewer_than_five_chunks_keep_the_fixed_fallback_thresholds():
    frame = _chunked_frame(n_chunks=4)
    reference = build_reference(frame, ["x", "c"], ["c"], chunk_column="chunk")
    assert reference.n_chunks == 0
    assert reference.columns["x"].thresholds == FALLBACK_THRESHOLDS
    assert set(reference.columns["c"].thresholds) == {"psi", "js", "missing"}


def test_reference_stats_json_round_trip_keeps_every_field_and_every_verdict():
    frame = _chunked_frame().with_columns(
        pl.when(pl.col("x") > 1.5).then(None).otherwise(pl.col("x")).alias("x"))
    reference = build_reference(frame, ["x", "c"], ["c"], target="x", chunk_column="chunk")
    restored = ReferenceStats.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert restored.to_dict() == reference.to_dict()
    current = _chunked_frame(seed=9)
    before, after = compare(reference, current), compare(restored, current)
    assert after.to_markdown() == before.to_markdown()
    for a, b in zip(after.columns, before.columns):
        np.testing.assert_array_equal(list(a.stats.values()), list(b.stats.values()))
    assert restored.columns["x"].role == "target" and restored.columns["x"].missing_rate > 0


def test_reference_stats_from_another_format_version_is_rejected():
    data = build_reference(_chunked_frame(), ["x"]).to_dict()
    with pytest.raises(ValueError, match="format"):
        ReferenceStats.from_dict({**data, "format_version": 99})


def test_numeric_sketch_has_deduplicated_quantile_edges_and_whole_bins_on_ties():
    values = np.r_[np.zeros(600), np.arange(1, 401) % 7]  # 60 % zeros
    sketch = build_reference(pl.DataFrame({"x": values}), ["x"]).columns["x"].sketch
    assert np.all(np.diff(sketch.edges) > 0) and sketch.edges[0] == 0
    assert sketch.bin_counts[0] == 600 + np.sum(np.arange(1, 401) % 7 == 0)
    assert sketch.bin_counts.sum() == values.size
    assert sketch.quantiles["0.5"] == np.quantile(values, 0.5)
    assert sketch.exact_ks and sketch.support.tolist() == list(range(7))
