"""The code location as the UI sees it: every stage an asset with an owner, the jobs, schedules, sensors."""

from orchestration.definitions import defs

ASSETS = {
    "raw_rentals", "validated_rentals", "quarantined_rentals", "rental_features", "rental_training_set",
    "rental_candidate_model", "rental_reference_statistics", "rental_model_evaluation", "rental_champion_model",
    "rental_batch_predictions", "rental_drift_report", "rental_performance_report",
}


def test_every_lifecycle_stage_is_an_asset_with_an_owner():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == ASSETS
    assert all(graph.get(k).owners for k in graph.get_all_asset_keys())


def test_lineage_runs_from_raw_to_the_reports_and_the_champion():
    graph = defs.resolve_asset_graph()
    ancestors = {a.to_user_string() for a in graph.get_ancestor_asset_keys(
        next(k for k in graph.get_all_asset_keys() if k.to_user_string() == "rental_drift_report"))}
    assert {"raw_rentals", "validated_rentals", "rental_features", "rental_batch_predictions",
            "rental_champion_model", "rental_model_evaluation", "rental_training_set"} <= ancestors


def test_jobs_schedules_and_sensors():
    assert {j.name for j in defs.jobs} == {"ingest_rentals", "daily_rentals", "performance_rentals",
                                           "retrain_rentals", "rollback_rentals_champion"}
    assert {s.name for s in defs.schedules} == {"daily_rentals_schedule", "weekly_rentals_retrain"}
    assert {s.name for s in defs.sensors} == {"rentals_landing_sensor", "rentals_retrain_sensor",
                                              "rentals_labels_sensor", "rentals_alert_sensor",
                                              "rentals_freshness_sensor"}


def test_blocking_contracts_guard_the_graph():
    blocking = {(c.asset_key.to_user_string(), c.name) for checks in defs.asset_checks
                for c in checks.check_specs if c.blocking}
    assert {("raw_rentals", "schema_contract"), ("validated_rentals", "row_contract"),
            ("validated_rentals", "conservation"), ("rental_features", "feature_contract"),
            ("rental_model_evaluation", "promotion_gate"),
            ("rental_batch_predictions", "prediction_contract")} <= blocking
