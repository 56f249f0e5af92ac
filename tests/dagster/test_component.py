"""A use case is an `MLUseCase` component: the defs folder, `dg` and the module path give one graph."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ml.retrain_policy import RetrainPolicy
from ml.usecases import BIKE_RENTALS, USE_CASES
from orchestration.components import MLUseCase
from orchestration.definitions import build_definitions, defs, platform

ROOT = Path(__file__).resolve().parents[2]
DG = Path(sys.executable).parent / "dg"


def keys(definitions: dg.Definitions) -> set[str]:
    return {k.to_user_string() for k in definitions.resolve_asset_graph().get_all_asset_keys()}


def test_the_component_path_declares_every_registered_use_case_as_the_module_path_does():
    component_path, module_path = defs(), build_definitions(list(USE_CASES.values()))
    assert keys(component_path) == keys(module_path)
    assert {j.name for j in component_path.jobs} == {j.name for j in module_path.jobs}
    assert {s.name for s in component_path.sensors} == {s.name for s in module_path.sensors}


def test_a_component_takes_a_spec_reference_and_policy_overrides():
    use_case = MLUseCase.resolve_from_yaml("spec: ml.usecases.bike_rentals:SPEC\nretrain_policy:\n  drift_persistence: 5\n")
    assert use_case.use_case_spec() is BIKE_RENTALS
    assert use_case.policy() == RetrainPolicy(drift_persistence=5)
    built = use_case.build_defs(dg.ComponentTree.for_test().load_context)
    assert keys(dg.Definitions.merge(built, platform([BIKE_RENTALS]))) == keys(build_definitions([BIKE_RENTALS]))


def test_a_policy_override_of_no_field_is_refused_with_the_known_fields():
    with pytest.raises(Exception, match="unknown RetrainPolicy field.*drift_days.*drift_persistence"):
        MLUseCase.resolve_from_yaml("spec: ml.usecases.bike_rentals:SPEC\nretrain_policy:\n  drift_days: 5\n")


def test_a_spec_reference_to_something_else_is_refused():
    with pytest.raises(TypeError, match="HISTORY_SLACK_DAYS is a int, not a UseCaseSpec"):
        MLUseCase(spec="ml.retrain_policy:HISTORY_SLACK_DAYS").use_case_spec()


@pytest.mark.integration
def test_dg_check_defs_loads_the_project(tmp_path):
    env = {**os.environ, "VIRTUAL_ENV": str(ROOT / ".venv"), "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run([str(DG), "check", "defs"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All component YAML validated successfully" in result.stdout
    assert "All definitions loaded successfully" in result.stdout


@pytest.mark.integration
def test_dg_list_defs_lists_what_the_code_location_defines(tmp_path):
    """`dg list defs` (the README's command, as JSON) names every asset, check, job, schedule and sensor
    of both use cases, each traced to its use case's defs.yaml."""
    import json

    env = {**os.environ, "VIRTUAL_ENV": str(ROOT / ".venv"), "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run([str(DG), "list", "defs", "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    listed = json.loads(result.stdout)
    location = defs()
    assert {a["asset_key"] for a in listed["assets"]} == keys(location) >= {"raw_rentals", "rental_drift_report",
                                                                              "raw_seoul_bikes"}
    assert {"raw_rentals:schema_contract", "validated_rentals:row_contract",
            "rental_model_evaluation:promotion_gate"} <= {c["key"] for c in listed["asset_checks"]}
    for kind, defined in (("jobs", location.jobs), ("schedules", location.schedules), ("sensors", location.sensors)):
        assert {d["name"] for d in listed[kind]} == {d.name for d in defined}, kind
    raw = next(a for a in listed["assets"] if a["asset_key"] == "raw_rentals")
    assert raw["source"].startswith("orchestration/defs/bike_rentals/defs.yaml")
    assert {r["name"] for r in listed["resources"]} >= {"storage", "source", "mlflow", "alert_sink"}
