"""Challenger against champion on the same recent hold-out: the evidence the gate decides on."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from ml.evaluation import (BootstrapResult, business_impact, metrics_by_slice, paired_bootstrap, regression_metrics,
                           slice_labels)
from ml.gate import GateConfig, GateDecision, NaiveComparison, evaluate_gate
from ml.spec import UseCaseSpec


@dataclass(frozen=True)
class Comparison:
    challenger: dict
    champion: dict | None
    challenger_slices: list[dict]
    champion_slices: list[dict] | None
    bootstrap: BootstrapResult | None
    challenger_business: dict
    naive: NaiveComparison | None
    decision: GateDecision

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        rows = ["| model | MAE | RMSE | MAPE |", "| --- | ---: | ---: | ---: |"]
        for name, m in (("challenger", self.challenger), ("champion", self.champion)):
            if m:
                rows.append(f"| {name} | {m['mae']:.2f} | {m['rmse']:.2f} | {m['mape']:.1%} |")
        if self.naive and self.naive.rows:
            rows.append(f"| seasonal naive ({self.naive.period_days} days earlier; {self.naive.rows} rows) "
                        f"| {self.naive.naive_mae:.2f} | - | - |")
        seg = ["", "| slice | segment | n | challenger MAE | champion MAE |", "| --- | --- | ---: | ---: | ---: |"]
        champ = {(r["slice"], r["segment"]): r for r in self.champion_slices or []}
        for r in self.challenger_slices:
            old = champ.get((r["slice"], r["segment"]))
            seg.append(f"| {r['slice']} | {r['segment']} | {r['n']} | {r['mae']:.2f} | "
                       f"{old['mae']:.2f} |" if old else f"| {r['slice']} | {r['segment']} | {r['n']} | {r['mae']:.2f} | - |")
        return "\n".join([self.decision.to_markdown(), *rows, *seg])


def _with_slice_intervals(spec: UseCaseSpec, holdout: pl.DataFrame, y: np.ndarray, champion_pred: np.ndarray,
                          challenger_pred: np.ndarray, days: np.ndarray, rows: list[dict], seed: int) -> list[dict]:
    """Each challenger segment with the 95% interval of its MAE difference to the champion, bootstrapped
    over whole days: a segment of a two-week hold-out is a few dozen hours, and the gate must tell a
    segment that got worse from one that was unlucky."""
    labels = {name: series.to_numpy() for name, series in slice_labels(spec, holdout).items()}
    out = []
    for row in rows:
        mask = labels[row["slice"]] == row["segment"]
        b = paired_bootstrap(y[mask], champion_pred[mask], challenger_pred[mask], n_boot=500, seed=seed,
                             blocks=days[mask])
        out.append({**row, "diff_ci_low": b.ci_low, "diff_ci_high": b.ci_high})
    return out


def compare(spec: UseCaseSpec, holdout: pl.DataFrame, challenger_pred: np.ndarray, champion_pred: np.ndarray | None,
            config: GateConfig, latency_ms_per_1k: float, model_size_bytes: int, seed: int = 0,
            naive_pred: np.ndarray | None = None) -> Comparison:
    """Score both models on the same rows; bootstrap over whole days, since hourly errors correlate.

    `naive_pred` is the seasonal-naive forecast per hold-out row (NaN where the earlier period is
    unknown); the challenger must beat it on the rows where it exists.
    """
    y = holdout[spec.target].to_numpy().astype(float)
    naive = None
    if naive_pred is not None:
        known = ~np.isnan(naive_pred)
        naive = NaiveComparison(
            challenger_mae=float(np.mean(np.abs(challenger_pred[known] - y[known]))) if known.any() else float("nan"),
            naive_mae=float(np.mean(np.abs(naive_pred[known] - y[known]))) if known.any() else float("nan"),
            rows=int(known.sum()), period_days=spec.seasonal_period_days)
    days = holdout[spec.event_date].to_numpy()
    challenger = regression_metrics(y, challenger_pred)
    challenger_slices = metrics_by_slice(spec, holdout, y, challenger_pred)
    champion = champion_slices = bootstrap = None
    if champion_pred is not None:
        champion = regression_metrics(y, champion_pred)
        champion_slices = metrics_by_slice(spec, holdout, y, champion_pred)
        bootstrap = paired_bootstrap(y, champion_pred, challenger_pred, seed=seed, blocks=days)
        challenger_slices = _with_slice_intervals(spec, holdout, y, champion_pred, challenger_pred, days,
                                                  challenger_slices, seed)
    decision = evaluate_gate(config, challenger, champion, challenger_slices, champion_slices, bootstrap,
                             latency_ms_per_1k, model_size_bytes, naive)
    return Comparison(challenger, champion, challenger_slices, champion_slices, bootstrap,
                      business_impact(y, challenger_pred, days), naive, decision)
