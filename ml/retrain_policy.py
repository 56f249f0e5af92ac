"""When to retrain: drift that persists, or quality that degrades — once per episode, with a cooldown.

Pure: the Dagster sensor and the offline replay call the same `decide`, so what the replay reports
is what the sensor does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date


@dataclass(frozen=True)
class DayHealth:
    day: str
    drifted: bool
    drifted_features: tuple[str, ...] = ()
    mae_ratio: float | None = None  # day MAE / champion's hold-out MAE; None until labels arrive


@dataclass(frozen=True)
class RetrainPolicy:
    drift_persistence: int = 3  # consecutive drifted days before acting
    mae_degradation: float = 1.5  # MAE this many times the hold-out baseline ...
    degradation_persistence: int = 2  # ... on this many consecutive labelled days
    cooldown_days: int = 7  # no second retrain this soon after one


@dataclass(frozen=True)
class PolicyState:
    last_retrain_day: str | None = None
    episode_open: bool = False  # a retrain was requested for the current streak; wait for it to end
    history: tuple[DayHealth, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str
    evidence: dict
    state: PolicyState


def _streak(history: tuple[DayHealth, ...], bad) -> list[DayHealth]:
    run: list[DayHealth] = []
    for h in reversed(history):
        if not bad(h):
            break
        run.append(h)
    return run[::-1]


def decide(policy: RetrainPolicy, state: PolicyState, today: DayHealth) -> Decision:
    """Add one day's health (days in order) and say whether to launch a retrain now."""
    keep = max(policy.drift_persistence, policy.degradation_persistence)
    history = (*state.history, today)[-keep:]
    drift_run = _streak(history, lambda h: h.drifted)
    slow_run = _streak(history, lambda h: h.mae_ratio is not None and h.mae_ratio >= policy.mae_degradation)
    episode = len(drift_run) >= policy.drift_persistence or len(slow_run) >= policy.degradation_persistence
    state = replace(state, history=history, episode_open=state.episode_open and (bool(drift_run) or bool(slow_run)))
    if not episode:
        return Decision(False, "healthy" if not drift_run else f"drift for {len(drift_run)} day(s)", {}, state)
    if state.episode_open:
        return Decision(False, "retrain already requested for this episode", {}, state)
    if state.last_retrain_day and (date.fromisoformat(today.day) - date.fromisoformat(state.last_retrain_day)).days \
            < policy.cooldown_days:
        return Decision(False, f"cooldown since {state.last_retrain_day}", {}, state)
    if len(drift_run) >= policy.drift_persistence:
        features = sorted({f for h in drift_run for f in h.drifted_features})
        reason = f"drift persisted {len(drift_run)} days ({drift_run[0].day}..{today.day})"
        evidence = {"days": [h.day for h in drift_run], "features": features}
    else:
        reason = f"MAE >= {policy.mae_degradation}x baseline for {len(slow_run)} days"
        evidence = {"days": [h.day for h in slow_run], "mae_ratio": [round(h.mae_ratio, 3) for h in slow_run]}
    return Decision(True, reason, evidence, replace(state, last_retrain_day=today.day, episode_open=True))
