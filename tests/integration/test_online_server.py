"""The model server as a real process on loopback (`python -m serving`) against a scratch lake and MLflow
store holding a trained champion: every endpoint answers, every bad input is refused with a 4xx while
the server serves on, and a champion promoted by the retrain job takes over the answers with no failed
request during the switch."""

import os
import signal
import socket
import threading
import time

import httpx
import polars as pl
import pytest

from orchestration.simulation import Simulation
from resources.mlflow_tracking import CHAMPION
from serving.process import free_port, start_server
from serving.request_log import read_day
from serving.rows import RequestRows
from tests.unit.test_online_app import bad_requests

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CUTOFF = "2011-04-01"
MODEL = "/v2/models/rental_model"


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("online-server")
    sim = Simulation.fresh(root / "sim")
    sim.bootstrap("2011-01-01", CUTOFF)
    assert sim.champion() == "1"
    return sim, root


@pytest.fixture(scope="module")
def server(stores):
    sim, root = stores
    port = free_port()
    env = {**os.environ, "LAKE_ROOT": str(root / "sim/lake"), "MLFLOW_TRACKING_URI": f"sqlite:///{root}/sim/mlflow.db",
           "MLFLOW_ARTIFACT_ROOT": str(root / "sim/artifacts"), "SERVING_POLL_S": "0.5", "SERVING_LOG_FLUSH_S": "0.5",
           "SERVING_MAX_BODY_BYTES": "4000", "SERVING_MAX_ROWS": "10"}
    proc = start_server(env, port, "--use-case", "rentals", log=root / "server.log")
    yield f"http://127.0.0.1:{port}", proc, root / "server.log"
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)


def week(sim) -> pl.DataFrame:
    return pl.concat([sim.storage.read_parquet(f"rentals/validated/2011-03-{d}.parquet") for d in range(25, 32)])


def test_every_endpoint_answers(stores, server):
    sim, _ = stores
    url, _, _ = server
    with httpx.Client(base_url=url) as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json()["models"] == ["rental_model"]
        assert client.get("/v2").json()["models"] == ["rental_model"]
        assert client.get(f"{MODEL}/ready").json()["ready"] is True
        meta = client.get(MODEL).json()
        assert meta["versions"] == ["1"] and {i["name"] for i in meta["inputs"]} == {c.name for c in RequestRows(
            sim.spec).inputs}
        assert client.get(f"{MODEL}/versions/1").status_code == 200
        request = RequestRows(sim.spec).request(week(sim).head(5))
        for path in (f"{MODEL}/infer", f"{MODEL}/versions/1/infer"):
            answer = client.post(path, json=request)
            assert answer.status_code == 200 and answer.json()["model_version"] == "1"
            assert answer.headers["x-model-version"] == "1" and len(answer.json()["outputs"][0]["data"]) == 5


def test_every_bad_input_is_refused_and_the_server_serves_on(stores, server):
    sim, _ = stores
    url, proc, _ = server
    day = week(sim).head(11)
    good = RequestRows(sim.spec).request(day.head(1))
    with httpx.Client(base_url=url) as client:
        for name, path, body, media, status, words in bad_requests(sim.spec, day):
            answer = client.post(path, content=body, headers={"content-type": media})
            assert (answer.status_code, name) == (status, name), answer.text
            assert words in answer.json()["error"], (name, answer.json())
        # A body streamed without a length is cut off at the limit too.
        streamed = client.post(f"{MODEL}/infer", content=iter([b"{" + b" " * 3000, b" " * 3000 + b"}"]),
                               headers={"content-type": "application/json"})
        assert streamed.status_code == 413 and "limit of 4000 bytes" in streamed.json()["error"]
        assert client.post(f"{MODEL}/infer", json=good).status_code == 200
    # Not HTTP at all: the server's HTTP parser answers 400 and goes on.
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as raw:
        raw.sendall(b"\x16\x03\x01 not http\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
    assert proc.poll() is None and httpx.post(f"{url}{MODEL}/infer", json=good).status_code == 200


def test_a_champion_promoted_by_the_retrain_job_takes_over_without_a_failed_request(stores, server):
    sim, root = stores
    url, proc, log = server
    requests = [RequestRows(sim.spec).request(row) for row in week(sim).head(50).iter_slices(1)]
    answers: list[tuple[int, str | None]] = []
    done = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            i = 0
            while not done.is_set():
                answer = http.post(f"{MODEL}/infer", json=requests[i % len(requests)])
                answers.append((answer.status_code, answer.headers.get("x-model-version")))
                i += 1

    thread = threading.Thread(target=client)
    thread.start()
    try:
        result = sim.run("retrain_rentals", run_config={"ops": {
            "rental_training_set": {"config": {"cutoff": CUTOFF}},
            "rental_candidate_model": {"config": {"force": True}},  # a second version of the same recipe
            "rental_model_evaluation": {"config": {"min_relative_mae_improvement": -1.0}},  # equal is enough
        }})
        assert result.success and sim.mlflow.version_by_alias("rental_model", CHAMPION).version == "2"
        deadline = time.time() + 30
        while not answers or answers[-1][1] != "2":
            assert time.time() < deadline, f"still answering with v{answers[-1][1]}"
            time.sleep(0.1)
        time.sleep(1)
    finally:
        done.set()
        thread.join(30)
    assert len(answers) > 100 and [a for a in answers if a[0] != 200] == []
    versions = [v for _, v in answers]
    first_two = versions.index("2")
    assert first_two > 0 and set(versions[:first_two]) == {"1"} and set(versions[first_two:]) == {"2"}

    proc.send_signal(signal.SIGTERM)  # a graceful stop writes what is still buffered
    assert proc.wait(60) == 0, log.read_text()[-2000:]
    logged = pl.concat([read_day(sim.spec, sim.storage, f"2011-03-{d}") for d in range(25, 27)])
    assert set(logged["model_version"]) == {"1", "2"} and (logged["latency_ms"] > 0).all()
