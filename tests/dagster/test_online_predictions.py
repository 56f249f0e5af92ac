"""The online tier scores what the batch scores: the same rows sent to the model server come back with
the batch's predictions, bit for bit; its sampled traffic becomes `rental_online_predictions` (latency per
version in the metadata) and `rental_online_drift_report` judges it as the batch's drift report does."""

import time
from datetime import date, timedelta

import dagster as dg
import pytest
from starlette.testclient import TestClient

from orchestration.simulation import Simulation
from serving.app import Settings, create_app
from serving.rows import RequestRows
from tests.dagster.helpers import materialize_days

pytestmark = pytest.mark.slow

DAY = "2011-04-01"
WEEK = [(date.fromisoformat(DAY) - timedelta(days=i)).isoformat() for i in range(6, -1, -1)]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A champion on the first 90 days of 2011, and the batch's day 2011-04-01 scored and reported."""
    s = Simulation.fresh(tmp_path_factory.mktemp("online"))
    s.bootstrap("2011-01-01", DAY)
    assert s.run("daily_rentals", first=DAY).success
    return s


@pytest.fixture(scope="module")
def served(sim):
    """The week ending DAY sent to the model server, one request per day; the server's answers by day."""
    app = create_app([sim.spec], sim.storage, sim.mlflow, Settings(poll_s=0.2, log_flush_s=0.2))
    rows = RequestRows(sim.spec)
    answers = {}
    with TestClient(app) as client:
        deadline = time.time() + 60
        while client.get("/v2/health/ready").status_code != 200 and time.time() < deadline:
            time.sleep(0.2)
        for day in WEEK:
            validated = sim.storage.read_parquet(f"rentals/validated/{day}.parquet")
            answers[day] = client.post("/v2/models/rental_model/infer", json=rows.request(validated))
    return answers  # leaving the client stopped the server, which wrote its request log


def test_the_same_rows_get_the_batch_predictions_bit_for_bit(sim, served):
    answer = served[DAY]
    assert answer.status_code == 200 and answer.headers["x-model-version"] == "1"
    batch = sim.storage.read_parquet(f"rentals/predictions/{DAY}.parquet")
    validated = sim.storage.read_parquet(f"rentals/validated/{DAY}.parquet")
    assert batch.select("dteday", "hr").equals(validated.select("dteday", "hr"))  # the same rows, in order
    assert answer.json()["outputs"][0]["data"] == batch["prediction"].to_list()
    assert answer.json()["model_version"] == batch["model_version"][0]


def test_the_sampled_traffic_becomes_a_daily_asset_and_is_judged_like_the_batch(sim, served):
    assert all(a.status_code == 200 for a in served.values())
    result = materialize_days(sim.spec, sim.resources, WEEK[0], DAY, selection=dg.AssetSelection.assets(
        "rental_online_predictions", "rental_online_drift_report"))
    assert result.success
    table = sim.storage.read_parquet(f"rentals/online_predictions/{DAY}.parquet")
    batch = sim.storage.read_parquet(f"rentals/features/{DAY}.parquet").join(
        sim.storage.read_parquet(f"rentals/predictions/{DAY}.parquet"), on=["dteday", "hr"])
    columns = [c for c in batch.columns if c != "cnt"]  # key, features, prediction, version: no label online
    assert table.select(columns).equals(batch.select(columns))
    assert table["latency_ms"].min() > 0 and table["request_rows"].unique().to_list() == [24]

    metadata = {e.partition: e.materialization.metadata for e in result.get_asset_materialization_events()
                if e.asset_key.to_user_string() == "rental_online_predictions"}[DAY]
    assert "| model_version" in metadata["latency_by_version"].value
    p50, p90, p99 = (metadata[f"v1_p{q}_ms"].value for q in (50, 90, 99))
    assert 0 < p50 <= p90 <= p99 and metadata["v1_requests"].value == 1

    online = sim.storage.read_json(f"rentals/online_drift/{DAY}.json")
    batch_drift = sim.storage.read_json(f"rentals/drift/{DAY}.json")
    # The same week of inputs against the same reference: the same statistics, column by column, and the
    # same label-free estimate of the day (its rows, features and predictions are the batch's).
    inputs = {c["column"]: c for c in online["columns"] if c["role"] == "feature"}
    assert inputs == {c["column"]: c for c in batch_drift["columns"] if c["role"] == "feature"}
    assert set(inputs) == set(sim.spec.drift_columns)
    assert online["estimated_mae"] == pytest.approx(batch_drift["estimated_mae"], rel=1e-12)
    assert online["model_version"] == "1" and online["window"] == f"{WEEK[0]}..{DAY}"
    # Unlike the batch (one scored day), a week of online outputs is judged.
    judged = {d: next(c for c in report["columns"] if c["role"] == "prediction")["not_judged"]
              for d, report in (("online", online), ("batch", batch_drift))}
    assert judged["online"] is None and "younger than 7 days" in judged["batch"]
