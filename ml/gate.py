"""The promotion gate: named, auditable rules that a challenger must pass to replace the champion."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ml.evaluation import BootstrapResult


@dataclass(frozen=True)
class GateConfig:
    """Thresholds, kept out of code so a use case can tighten or relax them without a review of logic."""

    min_relative_mae_improvement: float = 0.02  # challenger MAE at least 2% below the champion's
    min_gain_over_naive: float = 0.05  # MAE at least 5% below the seasonal-naive forecast's, champion or not
    slice_tolerance: float = 0.10  # no segment's MAE more than 10% above the champion's there ...
    slice_requires_significance: bool = True  # ... beyond resampling noise (the segment's 95% CI above 0)
    min_slice_rows: int = 24  # smaller segments are too noisy to judge (one day of hours)
    require_significance: bool = True  # the bootstrap 95% CI of the MAE difference must be < 0
    max_latency_ms_per_1k: float = 200.0
    max_model_size_bytes: int = 200 * 1024**2


@dataclass(frozen=True)
class RuleResult:
    rule: str
    passed: bool
    observed: float | None
    limit: float | None
    message: str


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    rules: tuple[RuleResult, ...]

    def to_markdown(self) -> str:
        """A table a reviewer can read in a run page or a pull request."""
        lines = [
            f"**Gate: {'PROMOTE' if self.passed else 'REJECT'}**",
            "",
            "| rule | result | observed | limit | detail |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r.rule} | {'pass' if r.passed else 'FAIL'} | {_fmt(r.observed)} | {_fmt(r.limit)} "
            f"| {r.message} |"
            for r in self.rules
        ]
        return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def evaluate_gate(
    config: GateConfig,
    challenger_metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    challenger_slices: list[dict],
    champion_slices: list[dict] | None,
    bootstrap: BootstrapResult | None,
    latency_ms_per_1k: float,
    model_size_bytes: int,
    naive: NaiveComparison | None = None,
) -> GateDecision:
    """Judge a challenger; every rule is always reported, and all must pass to promote.

    With no champion the first model still has a floor to beat: the seasonal-naive forecast (`naive`,
    on the hold-out rows where it exists), which needs no model at all.
    Metrics are `regression_metrics` dicts, slices `metrics_by_slice` rows.
    """
    rules = (
        _naive_floor(config, naive),
        _overall(config, challenger_metrics, champion_metrics),
        _slices(config, challenger_slices, champion_slices),
        _significance(config, bootstrap, champion_metrics is not None),
        _budget("latency_ms_per_1k", latency_ms_per_1k, config.max_latency_ms_per_1k),
        _budget("model_size_bytes", model_size_bytes, config.max_model_size_bytes),
    )
    return GateDecision(all(r.passed for r in rules), rules)


@dataclass(frozen=True)
class NaiveComparison:
    """Challenger and seasonal-naive MAE on the same rows (those whose value one period earlier is known)."""

    challenger_mae: float
    naive_mae: float
    rows: int
    period_days: int


def _naive_floor(config: GateConfig, naive: NaiveComparison | None) -> RuleResult:
    name, limit = "beats_seasonal_naive", config.min_gain_over_naive
    if naive is None or naive.rows == 0:
        return RuleResult(name, True, None, limit, "no seasonal-naive forecast on the hold-out (no earlier period)")
    gain = _relative_gain(naive.naive_mae, naive.challenger_mae)
    return RuleResult(
        name, gain >= limit, gain, limit,
        f"naive (same hour {naive.period_days} days earlier) MAE {naive.naive_mae:.4g} -> challenger "
        f"{naive.challenger_mae:.4g} ({gain:+.1%}; needs >= {limit:+.1%}) on {naive.rows} rows",
    )


def _overall(config: GateConfig, challenger: dict, champion: dict | None) -> RuleResult:
    name, limit = "overall_mae_improvement", config.min_relative_mae_improvement
    if champion is None:
        return RuleResult(name, True, None, limit, f"no champion; challenger MAE {challenger['mae']:.4g}")
    gain = _relative_gain(champion["mae"], challenger["mae"])
    return RuleResult(
        name, gain >= limit, gain, limit,
        f"MAE {champion['mae']:.4g} -> {challenger['mae']:.4g} ({gain:+.1%}; needs >= {limit:+.1%})",
    )


def _relative_gain(champion_mae: float, challenger_mae: float) -> float:
    """Relative MAE reduction; positive when the challenger is better."""
    if champion_mae == 0:
        return 0.0 if challenger_mae == 0 else -math.inf
    return (champion_mae - challenger_mae) / champion_mae


def _slices(config: GateConfig, challenger: list[dict], champion: list[dict] | None) -> RuleResult:
    name, limit = "worst_slice_degradation", config.slice_tolerance
    if champion is None:
        return RuleResult(name, True, None, limit, "no champion to compare slices with")
    before = {(r["slice"], r["segment"]): r for r in champion}
    judged, skipped = [], 0
    for row in challenger:
        old = before.get((row["slice"], row["segment"]))
        if old is None or min(row["n"], old["n"]) < config.min_slice_rows:
            skipped += 1
            continue
        # Without an interval (or when not required) the tolerance alone decides.
        surely_worse = not config.slice_requires_significance or row.get("diff_ci_low", math.inf) > 0
        judged.append((-_relative_gain(old["mae"], row["mae"]), surely_worse, f"{row['slice']}={row['segment']}"))
    if not judged:
        return RuleResult(name, True, None, limit, f"no segment has {config.min_slice_rows}+ rows")
    worse, _, where = max(judged)
    failing = [seg for w, sure, seg in judged if w > limit and sure]
    noisy = [seg for w, sure, seg in judged if w > limit and not sure]
    detail = f"failing: {', '.join(failing)}" if failing else "no segment worse beyond tolerance and noise"
    if noisy:
        detail += f"; worse but within resampling noise: {', '.join(noisy)}"
    return RuleResult(
        name, not failing, worse, limit,
        f"worst {where} MAE {worse:+.1%}; {detail}; {len(judged)} judged, {skipped} too small",
    )


def _significance(config: GateConfig, bootstrap: BootstrapResult | None, has_champion: bool) -> RuleResult:
    name = "bootstrap_significance"
    if not has_champion:
        return RuleResult(name, True, None, 0.0, "no champion; nothing to be significantly better than")
    if bootstrap is None:
        return RuleResult(name, not config.require_significance, None, 0.0, "no bootstrap supplied")
    b = bootstrap
    message = (f"MAE diff {b.mae_diff:+.4g}, 95% CI [{b.ci_low:+.4g}, {b.ci_high:+.4g}], "
               f"P(better) {b.p_better:.1%} over {b.n_units} units")
    if not config.require_significance:
        message += " (informational)"
    return RuleResult(name, b.significant or not config.require_significance, b.ci_high, 0.0, message)


def _budget(name: str, observed: float, limit: float) -> RuleResult:
    ok = observed <= limit
    return RuleResult(name, ok, float(observed), float(limit), f"{observed:.4g} {'<=' if ok else '>'} {limit:.4g}")
