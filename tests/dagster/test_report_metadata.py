"""Daily reports give Dagster one materialization per day with its own numbers (for the Partitions and
Plots tabs) and pictures: the drift heat map and the MAE by day, rendered once per run."""

from collections import defaultdict

import pytest

from ml.monitoring import DRIFT_WINDOW_DAYS
from orchestration.simulation import Simulation

pytestmark = pytest.mark.slow

DAYS = ["2011-04-01", "2011-04-02", "2011-04-03"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A champion trained on the first 90 days of 2011, then one daily run over three days."""
    sim = Simulation.fresh(tmp_path_factory.mktemp("report_metadata"))
    sim.bootstrap("2011-01-01", DAYS[0])
    result = sim.run(f"daily_{sim.spec.name}", first=DAYS[0], last=DAYS[-1])
    assert result.success
    return sim, result


def per_day(result, asset: str) -> dict[str, dict]:
    events = defaultdict(list)
    for e in result.get_asset_materialization_events():
        if e.asset_key.to_user_string() == asset:
            events[e.partition].append({k: v.value for k, v in e.materialization.metadata.items()})
    assert all(len(v) == 1 for v in events.values()), "one materialization per day"
    return {day: v[0] for day, v in events.items()}


def test_each_day_of_the_drift_report_has_its_own_numbers(run):
    sim, result = run
    days = per_day(result, sim.spec.asset("drift_report"))
    assert sorted(days) == DAYS
    for day, meta in days.items():
        drift = sim.storage.read_json(f"{sim.spec.name}/drift/{day}.json")
        for key in ("share_drifted", "max_effect", "estimated_mae", "estimated_low", "estimated_high"):
            assert isinstance(meta[key], float), (day, key)
        assert isinstance(meta["drifted_feature_count"], int)
        assert meta["estimated_mae"] == pytest.approx(drift["estimated_mae"])
        assert meta["share_drifted"] == pytest.approx(drift["share_drifted"])
        assert meta["estimated_low"] <= meta["estimated_mae"] <= meta["estimated_high"]
    assert len({m["estimated_mae"] for m in days.values()}) == len(DAYS)  # not one number copied to all


def test_the_drift_report_shows_a_heat_map_and_explains_unjudged_outputs(run):
    sim, result = run
    days = per_day(result, sim.spec.asset("drift_report"))
    report = days[DAYS[-1]]["report"]
    assert report.count("data:image/png;base64,") == 1  # the column x day heat map
    assert "drift heat map" in report
    # The champion is three days old: its prediction and target are shown but not judged, and say so.
    assert f"not judged: model younger than {DRIFT_WINDOW_DAYS} days" in report
    assert "report" not in days[DAYS[0]]  # rendered once per run, on the latest day


def test_each_day_of_the_performance_report_has_its_own_numbers_and_the_mae_plot(run):
    sim, result = run
    figure = sim.spec.business_figure
    days = per_day(result, sim.spec.asset("performance_report"))
    assert sorted(days) == DAYS
    for day, meta in days.items():
        perf = sim.storage.read_json(f"{sim.spec.name}/performance/{day}.json")
        assert meta["labels_pending"] is False
        for key in ("mae", "estimated_mae", "naive_mae", "mae_ratio", figure.short, figure.idle):
            assert isinstance(meta[key], float), (day, key)
        assert meta["mae"] == pytest.approx(perf["mae"])
        assert meta[figure.short] == pytest.approx(perf["business"]["short_per_day"])
    assert len({m["mae"] for m in days.values()}) == len(DAYS)
    assert "data:image/png;base64," in days[DAYS[-1]]["mae_by_day"]
