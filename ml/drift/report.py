"""Compare a current frame with `ReferenceStats` and explain the verdict.

A column drifts only when an EFFECT SIZE (PSI, JS, KS statistic, Wasserstein distance in
reference standard deviations, missing-rate change) exceeds its calibrated threshold. p-values
(KS, chi-squared) are reported but never decide: with enough rows every negligible difference is
"significant". The out-of-range share (current values outside the reference [min, max]) is
reported too: there a tree model extrapolates flat.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ml.heavy import heavy_import
from ml.drift.measure import count, reference_counts, score
from ml.drift.reference import DECISIVE, ColumnRef, ReferenceStats
from ml.drift.sketch import Groups, per_column

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
    not_judged: str = ""  # why the column's verdict is withheld (e.g. outputs of a model's first days)

    @property
    def drifted(self) -> bool:
        return bool(self.drifted_by)

    @property
    def effect(self) -> float:
        """The largest deciding statistic over its threshold (> 1 drifts), NaN when none applies."""
        ratios = [abs(self.stats[s]) / t for s, t in self.thresholds.items()
                  if t > 0 and not np.isnan(self.stats.get(s, np.nan))]
        return float(max(ratios)) if ratios else float("nan")

    @property
    def verdict(self) -> str:
        return "yes" if self.drifted else (self.not_judged or "no")


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

    @property
    def max_effect(self) -> float:
        """The largest effect over its threshold among the judged columns (> 1: something drifted)."""
        effects = [c.effect for c in self.columns if not c.not_judged and not np.isnan(c.effect)]
        return max(effects) if effects else float("nan")

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
            lines.append(f"| {c.column} | {c.role} | {cells} | {c.verdict} |")
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
    groups = Groups.single(current.height)

    def column(col: ColumnRef) -> ColumnDrift:
        counts = count(col, current[col.name], groups)
        values = {k: float(v[0]) for k, v in score(reference_counts(col), counts).items()}
        thresholds = {s: col.thresholds[s] for s in DECISIVE[col.sketch.kind]}
        drifted_by = tuple(s for s, t in thresholds.items() if abs(values[s]) > t)
        return ColumnDrift(col.name, col.role, col.sketch.kind, int(counts["n"][0]), values, thresholds, drifted_by)

    present = [col for name, col in reference.columns.items() if name in current.columns]
    return DriftReport(per_column(column, present, current.height), drift_share, current.height,
                       reference.threshold_rule)


CHAR_INCHES = 0.075  # width of one tick-label character at font size 8, for margins
TICK_FONT = 8


def _figure(width: float, height: float, left: float, bottom: float, right: float = 0.2, top: float = 0.35):
    """A figure with margins given in inches. Fixed margins instead of `tight_layout`, which lays the
    figure out twice and cost half of each picture's time on the daily path; a `Figure` rather than
    pyplot, so no global figure registry is touched."""
    fig = heavy_import("matplotlib.figure").Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height)
    return fig, fig.add_subplot()


def _png(fig, dpi: int) -> bytes:
    buffer = io.BytesIO()
    # zlib level 1: a third faster than the default for a few kB more on a 20 kB picture.
    fig.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def _day_ticks(ax, days: list[str]) -> None:
    step = max(1, len(days) // 10)
    ax.set_xticks(np.arange(0, len(days), step), [d[5:] for d in days[::step]], rotation=45,
                  fontsize=TICK_FONT)


def _label_inches(labels: list[str]) -> float:
    return CHAR_INCHES * max((len(label) for label in labels), default=0) + 0.2


# Frames (figure, axes and the artists a picture updates) kept for the next picture of the same shape.
# The daily graph draws the same two pictures every day with new cells and labels; building the axes,
# their ticks and the colour bar was a third of each picture's time. Figures are not thread-safe, so a
# picture is drawn under the lock. Each call sets everything that differs between pictures: a kept
# frame draws the bytes a fresh one would (tests/unit/test_drift_report.py).
_FRAMES: dict[tuple, tuple] = {}
_FRAMES_LOCK = threading.Lock()
_MAX_FRAMES = 8


def _frame(key: tuple, build):
    if key not in _FRAMES:
        if len(_FRAMES) >= _MAX_FRAMES:
            _FRAMES.pop(next(iter(_FRAMES)))
        _FRAMES[key] = build()
    return _FRAMES[key]


def render_effect_heatmap_png(days: list[str], columns: list[str], effects: np.ndarray) -> bytes:
    """Column x day heat map of each column's largest statistic over its threshold (> 1 drifts; NaN
    blank), as PNG bytes. `effects` has one row per column and one column per day."""
    colors = heavy_import("matplotlib.colors")
    values = np.ma.masked_invalid(np.asarray(effects, dtype=float).reshape(len(columns), len(days)))
    top = float(values.max()) if values.count() else 2.0
    norm = colors.TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=max(top, 2.0))
    left = _label_inches(columns)

    def build():
        fig, ax = _figure(min(max(5.0, 2.5 + 0.25 * len(days)), 9.5) + left, 0.2 * len(columns) + 1.3,
                          left=left, bottom=0.6, right=0.9)
        image = ax.imshow(values, aspect="auto", cmap="RdBu_r", interpolation="nearest", norm=norm)
        # y given: the title's place is fixed, not searched for above the tick labels at every draw
        ax.set_title("largest statistic / threshold (red > 1: drifted; blank: not judged)", fontsize=9, y=1.0)
        fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02).ax.tick_params(labelsize=TICK_FONT)
        return fig, ax, image

    with _FRAMES_LOCK:
        fig, ax, image = _frame(("heatmap", len(days), len(columns), left), build)
        image.set_data(values)
        image.set_norm(norm)  # the colour bar follows its image's norm
        ax.set_yticks(np.arange(len(columns)), columns, fontsize=TICK_FONT)
        _day_ticks(ax, days)
        return _png(fig, dpi=80)


def render_series_png(days: list[str], series: dict[str, list[float]], title: str, ylabel: str) -> bytes:
    """One line per named series over the days (NaN: no point), as PNG bytes."""
    x = np.arange(len(days))
    values = {label: np.asarray(v, dtype=float) for label, v in series.items()}

    def build():
        fig, ax = _figure(7, 3, left=0.7, bottom=0.6)
        ax.tick_params(axis="y", labelsize=TICK_FONT)
        lines = {label: ax.plot(x, np.full(len(days), np.nan), marker="o", markersize=3, label=label)[0]
                 for label in series}
        return fig, ax, lines

    with _FRAMES_LOCK:
        fig, ax, lines = _frame(("series", len(days), tuple(series)), build)
        drawn = [label for label, y in values.items() if np.isfinite(y).any()]
        for label, line in lines.items():
            line.set_ydata(values[label])
            line.set_visible(label in drawn)
        for k, label in enumerate(drawn):  # the colour cycle counts only the series drawn
            lines[label].set_color(f"C{k}")
        ax.relim(visible_only=True)
        ax.set_autoscaley_on(True)
        ax.autoscale_view()
        if not drawn:  # no point at all: the range of an empty plot, not the margins around nothing
            ax.set_ylim(0.0, 1.0)
        _day_ticks(ax, days)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9, y=1.0)  # a fixed place, as in the heat map
        if drawn:
            ax.legend(handles=[lines[label] for label in drawn], fontsize=TICK_FONT)
        elif ax.get_legend() is not None:
            ax.get_legend().remove()
        return _png(fig, dpi=80)
