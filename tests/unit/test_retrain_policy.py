"""The retraining policy: persistence, cooldown, degradation (realized or estimated), and retries
with backoff and one escalation when the gate keeps refusing."""

from dataclasses import replace
from datetime import date, timedelta

import pytest

from ml.retrain_policy import DayHealth, PolicyState, RetrainPolicy, decide, record_outcome


def days(n, start="2011-06-01"):
    first = date.fromisoformat(start)
    return [(first + timedelta(days=i)).isoformat() for i in range(n)]


def run(policy, healths, promote=lambda decision: False):
    """Feed days in order; after a retrain, the champion changes only if `promote(decision)`."""
    state, decisions, version = PolicyState(), [], 1
    for h in healths:
        d = decide(policy, state, DayHealth(h.day, h.drifted, h.drifted_features, h.mae_ratio,
                                            h.estimated_mae_ratio, str(version)))
        state = d.state
        if d.retrain:
            if promote(d):
                version += 1
            else:
                state = record_outcome(state, "beats_seasonal_naive: MAE 30 vs naive 31")
        decisions.append(d)
    return decisions


def test_drift_must_persist_before_a_retrain():
    policy = RetrainPolicy(drift_persistence=3)
    flags = [True, True, False, True, True, True]
    decisions = run(policy, [DayHealth(d, f, ("temp",)) for d, f in zip(days(6), flags)])
    assert [d.retrain for d in decisions] == [False, False, False, False, False, True]
    assert decisions[-1].evidence["features"] == ["temp"]
    assert "drift persisted 3 days" in decisions[-1].reason


def test_drift_the_estimate_calls_harmless_does_not_retrain():
    policy = RetrainPolicy(drift_persistence=3, drift_min_estimated_ratio=1.15)
    harmless = [DayHealth(d, True, ("temp",), estimated_mae_ratio=1.0) for d in days(10)]
    decisions = run(policy, harmless)
    assert not any(d.retrain for d in decisions)
    assert decisions[-1].reason == "drift the estimate says is harmless"
    costly = [DayHealth(d, True, ("temp",), estimated_mae_ratio=1.2) for d in days(3)]
    decisions = run(policy, costly)
    assert decisions[-1].retrain and decisions[-1].evidence["estimated_mae_ratio"] == [1.2, 1.2, 1.2]


def test_a_promoted_model_starts_with_a_clean_record():
    policy = RetrainPolicy(drift_persistence=2, cooldown_days=0)
    decisions = run(policy, [DayHealth(d, True) for d in days(10)], promote=lambda d: True)
    # The new champion must itself drift for 2 days before the next retrain.
    assert [i for i, d in enumerate(decisions) if d.retrain] == [1, 3, 5, 7, 9]


def test_a_new_episode_after_recovery_retrains_again_after_cooldown():
    policy = RetrainPolicy(drift_persistence=2, cooldown_days=5)
    flags = [True, True, False, True, True, False, False, False, True, True]
    decisions = run(policy, [DayHealth(d, f) for d, f in zip(days(10), flags)], promote=lambda d: True)
    assert [i for i, d in enumerate(decisions) if d.retrain] == [1, 9]
    assert "cooldown" in decisions[4].reason


def test_quality_degradation_triggers_without_drift():
    policy = RetrainPolicy(mae_degradation=1.5, degradation_persistence=2)
    ratios = [1.0, 1.6, 1.2, 1.7, 1.9]
    decisions = run(policy, [DayHealth(d, False, mae_ratio=r) for d, r in zip(days(5), ratios)])
    assert [d.retrain for d in decisions] == [False, False, False, False, True]
    assert decisions[-1].evidence["mae_ratio"] == [1.7, 1.9]


def test_an_estimated_degradation_counts_before_labels_arrive():
    healths = [DayHealth(d, False, estimated_mae_ratio=2.0) for d in days(3)]
    assert any(d.retrain for d in run(RetrainPolicy(degradation_persistence=2), healths))
    assert not any(d.retrain for d in run(RetrainPolicy(degradation_persistence=2, use_estimate=False), healths))


def test_realized_labels_behind_a_delay_still_count():
    """Labels land 3 days late and the estimate sees nothing wrong; as the sensor does, the history's
    labels are refreshed before each day, and the realized degradation of older days triggers."""
    real = [1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    state, fired = PolicyState(), None
    for i, day in enumerate(days(len(real))):
        known = lambda j: real[j] if j <= i - 3 else None  # noqa: E731
        history = tuple(replace(h, mae_ratio=known(days(len(real)).index(h.day))) for h in state.history)
        decision = decide(RetrainPolicy(degradation_persistence=2), replace(state, history=history),
                          DayHealth(day, False, mae_ratio=known(i), estimated_mae_ratio=1.0, model_version="1"))
        state = decision.state
        if decision.retrain and fired is None:
            fired = (i, decision.reason)
    assert fired == (5, "MAE >= 1.35x baseline for 2 days")  # days 1 and 2, labelled on day 5


def test_no_drift_no_retrain_over_a_long_quiet_period():
    decisions = run(RetrainPolicy(), [DayHealth(d, False, mae_ratio=1.0) for d in days(200)])
    assert not any(d.retrain for d in decisions)


def test_a_refused_retrain_is_retried_with_backoff_and_escalated_once():
    policy = RetrainPolicy(cooldown_days=7, max_backoff=2.0, escalate_after=3)
    decisions = run(policy, [DayHealth(d, False, mae_ratio=3.0) for d in days(120)])
    attempts = [i for i, d in enumerate(decisions) if d.retrain]
    assert attempts[:3] == [1, 8, 22]  # cooldown 7, then 14 after one refusal, capped at 2x
    assert "retry 2 after 1 refusal(s)" in decisions[8].reason
    assert decisions[8].evidence["refusals"][0]["reason"].startswith("beats_seasonal_naive")
    escalations = [i for i, d in enumerate(decisions) if d.escalation]
    assert escalations == [attempts[3]]
    assert "3 retrains refused since" in decisions[attempts[3]].escalation


@pytest.mark.parametrize("cooldown", [3, 7, 10])
def test_invariant_never_silent_for_longer_than_twice_the_cooldown(cooldown):
    """No stretch longer than 2x the cooldown with MAE over the bar and no retrain attempt, whatever
    the gate says (here it refuses every other time)."""
    policy = RetrainPolicy(cooldown_days=cooldown)
    ratios = [3.0 if (i // 40) % 2 == 0 else 1.0 for i in range(300)]  # 40 bad days, 40 good, ...
    healths = [DayHealth(d, False, mae_ratio=r) for d, r in zip(days(300), ratios)]
    flip = iter(range(10**6))
    decisions = run(policy, healths, promote=lambda d: next(flip) % 2 == 1)
    silent = 0
    for h, d in zip(healths, decisions):
        silent = 0 if d.retrain or h.mae_ratio < policy.mae_degradation else silent + 1
        assert silent <= 2 * cooldown
