"""When to retrain: drift that persists and that the label-free estimate says costs, or quality that
degrades (realized, or estimated before the labels land) — and, when the gate refuses the retrain,
try again while the problem persists.

A refused retrain is a decision, not the end of the problem: the policy retries after the cooldown,
doubling the wait after each refusal up to `max_backoff` x the cooldown, so a degraded model is
never left alone for longer than that; after `escalate_after` refusals in a row it raises one
escalation for the training owner. Streaks count only the days of the model serving today: a newly
promoted model starts with a clean record.

Pure: the Dagster sensor and the offline replay call the same `decide`, so what the replay reports
is what the sensor does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date


HISTORY_SLACK_DAYS = 7  # days of history kept beyond the persistence, to see labels that arrive late


@dataclass(frozen=True)
class DayHealth:
    day: str
    drifted: bool
    drifted_features: tuple[str, ...] = ()
    mae_ratio: float | None = None  # day MAE / champion's hold-out MAE; None until labels arrive
    estimated_mae_ratio: float | None = None  # label-free estimate of the same ratio
    model_version: str | None = None  # the champion that served the day


@dataclass(frozen=True)
class RetrainPolicy:
    drift_persistence: int = 3  # consecutive drifted days that matter before acting
    # Drift matters when the label-free estimate says it costs: a drifted day counts only if its
    # estimated MAE is at least this many times the baseline (inputs move with the seasons; most
    # of that movement the model handles). 0 counts every drifted day.
    drift_min_estimated_ratio: float = 1.15
    mae_degradation: float = 1.35  # MAE this many times the hold-out baseline ...
    degradation_persistence: int = 2  # ... on this many consecutive days
    use_estimate: bool = True  # a day without labels counts as degraded on its label-free estimate
    cooldown_days: int = 10  # no retrain attempt sooner than this after the previous one
    max_backoff: float = 2.0  # after refusals the wait doubles, up to this multiple of the cooldown
    escalate_after: int = 3  # refusals in a row that page the training owner (once per problem)


@dataclass(frozen=True)
class Attempt:
    day: str
    version: str | None  # the champion when the retrain was launched
    reason: str
    outcome: str = ""  # the gate's refusal reason, once known


@dataclass(frozen=True)
class PolicyState:
    last_attempt: Attempt | None = None
    settled: bool = True  # the last attempt's result (promoted or refused) is known
    refusals: tuple[Attempt, ...] = ()  # refused attempts since the problem began
    escalated: bool = False
    history: tuple[DayHealth, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str
    evidence: dict
    state: PolicyState
    escalation: str | None = None  # a message for the training owner, raised once per problem


def record_outcome(state: PolicyState, outcome: str) -> PolicyState:
    """Attach the gate's verdict (e.g. its failed rules) to the pending attempt, for the evidence."""
    if state.last_attempt is None:
        return state
    return replace(state, last_attempt=replace(state.last_attempt, outcome=outcome))


def _streak(history: tuple[DayHealth, ...], bad) -> list[DayHealth]:
    run: list[DayHealth] = []
    for h in reversed(history):
        if not bad(h):
            break
        run.append(h)
    return run[::-1]


def _days(a: str, b: str) -> int:
    return (date.fromisoformat(b) - date.fromisoformat(a)).days


def _settle(state: PolicyState, today: DayHealth) -> PolicyState:
    """A day served after an attempt tells its result: a new champion, or the same one (refused)."""
    attempt = state.last_attempt
    if state.settled or attempt is None or today.day <= attempt.day:
        return state
    if today.model_version != attempt.version:
        return replace(state, settled=True, refusals=(), escalated=False)
    return replace(state, settled=True, refusals=(*state.refusals, attempt))


def decide(policy: RetrainPolicy, state: PolicyState, today: DayHealth) -> Decision:
    """Add one day's health (days in order) and say whether to launch a retrain now."""
    state = _settle(state, today)
    # Kept long enough to reach labelled days behind a label delay; the caller may refresh the
    # labels of these days (`mae_ratio`) as they land.
    keep = max(policy.drift_persistence, policy.degradation_persistence) + HISTORY_SLACK_DAYS
    history = tuple(h for h in (*state.history, today) if h.model_version == today.model_version)[-keep:]
    state = replace(state, history=history)

    def estimated(h: DayHealth) -> bool:
        ratio = h.mae_ratio if h.mae_ratio is not None else (h.estimated_mae_ratio if policy.use_estimate else None)
        return ratio is not None and ratio >= policy.mae_degradation

    def drift_matters(h: DayHealth) -> bool:
        estimate = h.estimated_mae_ratio if h.estimated_mae_ratio is not None else math.inf
        return h.drifted and estimate >= policy.drift_min_estimated_ratio

    drift_run = _streak(history, drift_matters)
    # Realized degradation on the newest labelled days, or (before labels land) on the estimate.
    realized_run = _streak(tuple(h for h in history if h.mae_ratio is not None),
                           lambda h: h.mae_ratio >= policy.mae_degradation)
    slow_run = max(realized_run, _streak(history, estimated), key=len)
    drift_episode = len(drift_run) >= policy.drift_persistence
    slow_episode = len(slow_run) >= policy.degradation_persistence
    if not (drift_episode or slow_episode):
        # The problem is over (or never began): refusals of an earlier problem no longer count.
        state = replace(state, refusals=(), escalated=False) if state.settled else state
        return Decision(False, f"drift that matters for {len(drift_run)} day(s)" if drift_run else
                        "drift the estimate says is harmless" if today.drifted else "healthy", {}, state)

    wait = policy.cooldown_days * min(policy.max_backoff, 2.0 ** max(0, len(state.refusals) - 1))
    last = state.last_attempt
    if last is not None and _days(last.day, today.day) < wait:
        what = f"backoff after {len(state.refusals)} refusal(s)" if state.refusals else "cooldown"
        return Decision(False, f"{what}: next attempt {wait:g} days after {last.day}", {}, state)

    if slow_episode:
        reason = f"MAE >= {policy.mae_degradation}x baseline for {len(slow_run)} days"
        evidence = {"days": [h.day for h in slow_run],
                    "mae_ratio": [None if h.mae_ratio is None else round(h.mae_ratio, 3) for h in slow_run],
                    "estimated_mae_ratio": [None if h.estimated_mae_ratio is None else round(h.estimated_mae_ratio, 3)
                                            for h in slow_run]}
    else:
        reason = (f"drift persisted {len(drift_run)} days ({drift_run[0].day}..{today.day}) with estimated MAE "
                  f">= {policy.drift_min_estimated_ratio}x baseline")
        evidence = {"days": [h.day for h in drift_run],
                    "features": sorted({f for h in drift_run for f in h.drifted_features}),
                    "estimated_mae_ratio": [h.estimated_mae_ratio and round(h.estimated_mae_ratio, 3) for h in drift_run]}
    if state.refusals:
        reason += f"; retry {len(state.refusals) + 1} after {len(state.refusals)} refusal(s)"
        evidence["refusals"] = [{"day": a.day, "reason": a.outcome or "refused by the gate"} for a in state.refusals]

    escalation = None
    if len(state.refusals) >= policy.escalate_after and not state.escalated:
        first = state.refusals[0].day
        ratios = [h.mae_ratio or h.estimated_mae_ratio for h in slow_run if (h.mae_ratio or h.estimated_mae_ratio)]
        escalation = (f"model {today.model_version}: {len(state.refusals)} retrains refused since {first} "
                      f"({_days(first, today.day)} days); "
                      + (f"MAE {max(ratios):.2f}x the hold-out baseline; " if ratios else f"{reason}; ")
                      + "refusals: " + "; ".join(f"{a.day}: {a.outcome or 'refused by the gate'}"
                                                 for a in state.refusals))
    attempt = Attempt(today.day, today.model_version, reason)
    state = replace(state, last_attempt=attempt, settled=False, escalated=state.escalated or escalation is not None)
    return Decision(True, reason, evidence, state, escalation)
