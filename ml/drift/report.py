"""Compare a current frame with `ReferenceStats` and explain the verdict.

A column drifts only when an EFFECT SIZE (PSI, JS, KS statistic, Wasserstein distance in
reference standard deviations, missing-rate change) exceeds its calibrated threshold. p-values
(KS, chi-squared) are reported but never decide: with enough rows every negligible difference is
"significant". The out-of-range share (current values outside the reference [min, max]) is
reported too: there a tree model extrapolates flat.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ml.drift.measure import count, reference_counts, score
from ml.drift.reference import DECISIVE, ReferenceStats
from ml.drift.sketch import Groups

COLUMNS_SHOWN = ("psi", "js", "ks", "wasserstein", "ks_pvalue", "chi2_pvalue", "missing",
                 "out_of_range")


@dataclass
class ColumnDrift:
    column: str
    role: str  # "feature" | "prediction" | "target"
    kind: str  # "numeric" | "categorical"
    n_current: int
    stats: dict[str, float]  # measure.STATISTICS (NaN if n/a)
    thresholds: dict[str, float]
    drifted_by: tuple[str, ...] = ()  # effect sizes above their threshold

    @property
    def drifted(self) -> bool:
        return bool(self.drifted_by)


@dataclass
class DriftReport:
    columns: list[ColumnDrift]
    drift_share: float  # fraction of drifted features that makes the dataset drifted
    n_current: int
    threshold_rule: str
    drifted_features: list[str] = field(init=False)
    share_drifted: float = field(init=False)
    drifted: bool = field(init=False)

    def __post_init__(self) -> None:
        features = [c for c in self.columns if c.role == "feature"]
        self.drifted_features = [c.column for c in features if c.drifted]
        self.share_drifted = len(self.drifted_features) / max(len(features), 1)
        prediction = any(c.drifted for c in self.columns if c.role == "prediction")
        self.drifted = prediction or (bool(features) and self.share_drifted >= self.drift_share)

    def to_markdown(self) -> str:
        verdict = "DRIFTED" if self.drifted else "no drift"
        lines = [
            f"**{verdict}**: {len(self.drifted_features)} of "
            f"{sum(c.role == 'feature' for c in self.columns)} features drifted "
            f"({self.share_drifted:.0%}, dataset drifts at {self.drift_share:.0%} or on prediction "
            f"drift); {self.n_current} current rows; thresholds: {self.threshold_rule}.",
            "",
            "| column | role | PSI (thr) | JS (thr) | KS (thr) | W1/sd (thr) | KS p | chi2 p "
            "| missing Δ (thr) | out of range | drifted |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in self.columns:
            cells = " | ".join(_cell(c, s) for s in COLUMNS_SHOWN)
            lines.append(f"| {c.column} | {c.role} | {cells} | {'yes' if c.drifted else 'no'} |")
        return "\n".join(lines)


def _cell(row: ColumnDrift, stat: str) -> str:
    """`value (threshold)`, bold when it decided the drift, `–` when not applicable."""
    value = row.stats[stat]
    if np.isnan(value):
        return "–"
    text = f"{value:.3g}" + (f" ({row.thresholds[stat]:.3g})" if stat in row.thresholds else "")
    return f"**{text}**" if stat in row.drifted_by else text


def compare(reference: ReferenceStats, current: pl.DataFrame,
            drift_share: float = 0.5) -> DriftReport:
    """Score every reference column present in `current` against the reference sketch only.

    Reference columns absent from `current` (e.g. the target before labels arrive) are skipped.
    """
    rows = []
    groups = Groups.single(current.height)
    for name, col in reference.columns.items():
        if name not in current.columns:
            continue
        counts = count(col, current[name], groups)
        stats = score(reference_counts(col), counts)
        values = {k: float(v[0]) for k, v in stats.items()}
        kind = col.sketch.kind
        thresholds = {s: col.thresholds[s] for s in DECISIVE[kind]}
        drifted_by = tuple(s for s, t in thresholds.items() if abs(values[s]) > t)
        rows.append(ColumnDrift(name, col.role, kind, int(counts["n"][0]), values, thresholds,
                                drifted_by))
    return DriftReport(rows, drift_share, current.height, reference.threshold_rule)


def render_psi_png(report: DriftReport) -> bytes:
    """Horizontal bars of each column's PSI against its threshold, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    cols = [c for c in report.columns if not np.isnan(c.stats["psi"])]
    y = np.arange(len(cols))
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(cols) + 1.2))
    ax.barh(y, [c.stats["psi"] for c in cols],
            color=["tab:red" if "psi" in c.drifted_by else "tab:blue" for c in cols])
    ax.scatter([c.thresholds["psi"] for c in cols], y, marker="|", s=200, color="black", zorder=3)
    ax.set_yticks(y, [f"{c.column} ({c.role})" if c.role != "feature" else c.column for c in cols])
    ax.invert_yaxis()
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlabel("PSI (nats)")
    verdict = "DRIFTED" if report.drifted else "no drift"
    ax.set_title(f"{verdict}: PSI per column (red: above threshold |)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
