"""Alert grouping: one alert per root cause and partition, symptoms attached, routed to the owner."""

from ml.alerts import Signal, group

UPSTREAM = {
    "raw": set(),
    "validated": {"raw"},
    "features": {"raw", "validated"},
    "predictions": {"raw", "validated", "features"},
    "drift_report": {"raw", "validated", "features", "predictions"},
    "performance_report": {"raw", "validated", "features", "predictions"},
}
OWNERS = {"raw": "data", "validated": "data", "features": "features", "drift_report": "monitoring",
          "performance_report": "monitoring"}


def test_upstream_breach_absorbs_downstream_drift_and_performance():
    signals = [
        Signal("2012-01-05", "drift_report", "drift", "3 features drifted", ("temp", "hum")),
        Signal("2012-01-05", "performance_report", "performance", "MAE 2.1x baseline"),
        Signal("2012-01-05", "raw", "contract_breach", "12 rows quarantined"),
    ]
    alerts = group(signals, UPSTREAM, OWNERS)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.root.asset == "raw" and alert.owner == "data"
    assert {s.kind for s in alert.symptoms} == {"drift", "performance"}
    assert alert.features == ("hum", "temp")
    assert "symptom [drift]" in alert.text()


def test_drift_without_upstream_cause_is_one_alert_for_monitoring_with_performance_attached():
    signals = [
        Signal("2012-01-05", "performance_report", "performance", "MAE 2.1x baseline"),
        Signal("2012-01-05", "drift_report", "drift", "temp drifted", ("temp",)),
    ]
    alerts = group(signals, UPSTREAM, OWNERS)
    assert len(alerts) == 1
    assert alerts[0].root.kind == "drift" and alerts[0].owner == "monitoring"
    assert [s.kind for s in alerts[0].symptoms] == ["performance"]


def test_each_partition_gets_its_own_alert():
    signals = [Signal(d, "drift_report", "drift", "x", ("temp",)) for d in ("2012-01-05", "2012-01-06")]
    alerts = group(signals, UPSTREAM, OWNERS)
    assert sorted(a.partition for a in alerts) == ["2012-01-05", "2012-01-06"]
    assert len({a.key for a in alerts}) == 2


def test_repeated_signals_of_the_same_cause_merge():
    signals = [Signal("2012-01-05", "validated", "check_failed", "row_contract"),
               Signal("2012-01-05", "validated", "check_failed", "conservation")]
    alerts = group(signals, UPSTREAM, OWNERS)
    assert len(alerts) == 1 and len(alerts[0].symptoms) == 1


def test_an_episode_pages_once_when_it_reaches_the_persistence():
    from ml.alerts import episode_starts

    days = [False, True, True, True, True, False, True]
    fired = [episode_starts(days[: i + 1], 3) for i in range(len(days))]
    assert fired == [False, False, False, True, False, False, False]


def test_a_run_failed_by_its_blocking_check_is_one_alert_about_the_check():
    signals = [Signal("run ab12cd34", "retrain_rentals", "run_failure", "retrain run failed"),
               Signal("run ab12cd34", "rental_model_evaluation", "check_failed", "promotion_gate: MAE not better")]
    upstream = {**UPSTREAM, "rental_model_evaluation": {"raw", "validated", "features", "training_set"}}
    alerts = group(signals, upstream, {"rental_model_evaluation": "training"})
    assert len(alerts) == 1 and alerts[0].root.kind == "check_failed" and alerts[0].owner == "training"
    assert [s.kind for s in alerts[0].symptoms] == ["run_failure"]
