"""The code location as the UI sees it: every stage of every use case an asset with an owner, the jobs,
schedules and sensors; read from the registered use cases, so adding one keeps these true."""

import pytest

from ml.usecases import USE_CASES
from orchestration.definitions import defs as load_defs

STAGES = ("training_set", "candidate_model", "reference_statistics", "model_evaluation", "champion_model",
          "features", "batch_predictions", "drift_report", "performance_report", "online_predictions",
          "online_drift_report")


@pytest.fixture(scope="module")
def defs():
    return load_defs()


def assets_of(spec) -> set[str]:
    return {f"{stage}_{spec.name}" for stage in ("raw", "validated", "quarantined")} | {spec.asset(s) for s in STAGES}


def test_every_lifecycle_stage_is_an_asset_with_an_owner(defs):
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == set().union(*(assets_of(spec) for spec in USE_CASES.values()))
    assert all(graph.get(k).owners for k in graph.get_all_asset_keys())


@pytest.mark.parametrize("spec", USE_CASES.values(), ids=USE_CASES.keys())
def test_lineage_runs_from_raw_to_the_reports_and_the_champion(defs, spec):
    graph = defs.resolve_asset_graph()
    ancestors = {a.to_user_string() for a in graph.get_ancestor_asset_keys(
        next(k for k in graph.get_all_asset_keys() if k.to_user_string() == spec.asset("drift_report")))}
    assert {f"raw_{spec.name}", f"validated_{spec.name}", spec.asset("features"), spec.asset("batch_predictions"),
            spec.asset("champion_model"), spec.asset("model_evaluation"), spec.asset("training_set")} <= ancestors


def test_jobs_schedules_and_sensors(defs):
    names = list(USE_CASES)
    assert {j.name for j in defs.jobs} == {f"{job}_{n}" for n in names
                                           for job in ("ingest", "daily", "performance", "online", "retrain")} | {
        f"rollback_{n}_champion" for n in names}
    assert {s.name for s in defs.schedules} == {f"{job}_{n}_schedule" for n in names for job in ("daily", "online")} | {
        f"weekly_{n}_retrain" for n in names}
    assert {s.name for s in defs.sensors} == {f"{n}_{s}_sensor" for n in names
                                              for s in ("landing", "retrain", "labels", "alert")}


@pytest.mark.parametrize("spec", USE_CASES.values(), ids=USE_CASES.keys())
def test_blocking_contracts_guard_the_graph(defs, spec):
    blocking = {(c.asset_key.to_user_string(), c.name) for checks in defs.asset_checks
                for c in checks.check_specs if c.blocking}
    assert {(f"raw_{spec.name}", "schema_contract"), (f"validated_{spec.name}", "row_contract"),
            (f"validated_{spec.name}", "conservation"), (spec.asset("features"), "feature_contract"),
            (spec.asset("batch_predictions"), "prediction_contract")} <= blocking
    # A refused challenger is a decision recorded by the champion asset, not a stopped graph.
    assert (spec.asset("model_evaluation"), "promotion_gate") not in blocking


def test_every_use_case_has_its_own_source(defs):
    sources = defs.resources["source"]
    assert set(sources.use_cases) == set(USE_CASES)
    assert defs.resources["landing"] is sources
