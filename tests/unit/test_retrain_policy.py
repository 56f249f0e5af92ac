"""The retraining policy: persistence, one retrain per episode, cooldown, degradation."""

from datetime import date, timedelta

from ml.retrain_policy import DayHealth, PolicyState, RetrainPolicy, decide


def days(n, start="2011-06-01"):
    first = date.fromisoformat(start)
    return [(first + timedelta(days=i)).isoformat() for i in range(n)]


def run(policy, healths):
    state, decisions = PolicyState(), []
    for h in healths:
        d = decide(policy, state, h)
        state = d.state
        decisions.append(d)
    return decisions


def test_drift_must_persist_before_a_retrain():
    policy = RetrainPolicy(drift_persistence=3)
    flags = [True, True, False, True, True, True]
    decisions = run(policy, [DayHealth(d, f, ("temp",)) for d, f in zip(days(6), flags)])
    assert [d.retrain for d in decisions] == [False, False, False, False, False, True]
    assert decisions[-1].evidence["features"] == ["temp"]
    assert "drift persisted 3 days" in decisions[-1].reason


def test_one_retrain_per_episode_even_when_drift_goes_on():
    policy = RetrainPolicy(drift_persistence=2, cooldown_days=0)
    decisions = run(policy, [DayHealth(d, True) for d in days(10)])
    assert sum(d.retrain for d in decisions) == 1


def test_a_new_episode_after_recovery_retrains_again_after_cooldown():
    policy = RetrainPolicy(drift_persistence=2, cooldown_days=5)
    flags = [True, True, False, True, True, False, False, False, True, True]
    decisions = run(policy, [DayHealth(d, f) for d, f in zip(days(10), flags)])
    assert [i for i, d in enumerate(decisions) if d.retrain] == [1, 9]
    assert "cooldown" in decisions[4].reason


def test_quality_degradation_triggers_without_drift():
    policy = RetrainPolicy(mae_degradation=1.5, degradation_persistence=2)
    ratios = [1.0, 1.6, 1.2, 1.7, 1.9]
    decisions = run(policy, [DayHealth(d, False, mae_ratio=r) for d, r in zip(days(5), ratios)])
    assert [d.retrain for d in decisions] == [False, False, False, False, True]
    assert decisions[-1].evidence["mae_ratio"] == [1.7, 1.9]


def test_no_drift_no_retrain_over_a_long_quiet_period():
    decisions = run(RetrainPolicy(), [DayHealth(d, False, mae_ratio=1.0) for d in days(200)])
    assert not any(d.retrain for d in decisions)
