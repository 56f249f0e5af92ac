"""The model server's HTTP surface, in process: every endpoint, every bad input a 4xx that names what is
wrong (and the server serving on after it), the version in every answer, a swap when the alias moves,
canary and shadow, and the sampled request log."""

import json
import time

import numpy as np
import pytest
from starlette.testclient import TestClient

from ml.contract import split_rows
from ml.features import build_features, feature_matrix
from ml.models import make_model
from ml.onnx_scoring import OnnxModel
from resources.mlflow_tracking import CHALLENGER, CHAMPION, RegisteredVersion
from resources.storage import LocalStorage
from serving.app import Settings, create_app
from serving.request_log import read_day
from serving.rows import RequestRows

DAY = "2011-06-01"
URL = "/v2/models/rental_model/infer"


class Registry:
    """The two registry calls the server makes, over ONNX bytes held in memory."""

    def __init__(self, onnx: dict[str, bytes]):
        self.onnx, self.aliases = onnx, {}

    def version_by_alias(self, name: str, alias: str):
        version = self.aliases.get(alias)
        return RegisteredVersion(version, f"run-{version}") if version else None

    def load_onnx(self, name: str, version: str) -> bytes:
        return self.onnx[version]


@pytest.fixture(scope="module")
def day(spec, june_first):
    return split_rows(spec, june_first, "f.csv", partition_day=DAY).validated


@pytest.fixture(scope="module")
def registry(spec, day):
    X, y = feature_matrix(spec, build_features(spec, day)), day["cnt"].to_numpy().astype(float)
    onnx = {v: make_model("trees", {"n_estimators": n, "min_child_samples": 2}).fit(X, y, X, y).to_onnx()
            for v, n in (("1", 5), ("2", 20))}
    return Registry(onnx)


def predictions(registry, version, spec, frame) -> list[float]:
    return np.clip(OnnxModel(registry.onnx[version]).predict(feature_matrix(spec, build_features(spec, frame))),
                   0, None).tolist()


@pytest.fixture
def server(spec, registry, tmp_path):
    registry.aliases = {CHAMPION: "1", CHALLENGER: "2"}
    storage = LocalStorage(root=str(tmp_path / "lake"))

    def start(**settings):
        app = create_app([spec], storage, registry, Settings(**{"poll_s": 0.05, **settings}))
        return TestClient(app), storage
    return start


def wait_ready(client):
    deadline = time.time() + 20
    while client.get("/v2/health/ready").status_code != 200:
        assert time.time() < deadline, client.get("/v2/health/ready").json()
        time.sleep(0.05)


def test_health_metadata_and_inference_give_the_champion_and_its_version(spec, day, registry, server):
    client, _ = server()
    with client:
        assert client.get("/v2/health/live").json() == {"live": True}
        wait_ready(client)
        assert client.get("/v2/models/rental_model/ready").status_code == 200
        meta = client.get("/v2/models/rental_model").json()
        assert meta["versions"] == ["1", "2"] and meta["parameters"]["champion_version"] == "1"
        inputs = {i["name"]: i["datatype"] for i in meta["inputs"]}
        assert inputs["dteday"] == "BYTES" and inputs["hr"] == "INT64" and inputs["temp"] == "FP64"
        assert "cnt" not in inputs and meta["outputs"] == [{"name": "prediction", "datatype": "FP64", "shape": [-1]}]
        assert client.get("/v2/models/rental_model/versions/2").status_code == 200

        answer = client.post(URL, json={"id": "r1", **RequestRows(spec).request(day)})
        assert answer.status_code == 200 and answer.headers["x-model-version"] == "1"
        body = answer.json()
        assert body["id"] == "r1" and body["model_version"] == "1" and body["parameters"]["role"] == "champion"
        assert body["outputs"][0]["data"] == predictions(registry, "1", spec, day)
        pinned = client.post("/v2/models/rental_model/versions/2/infer", json=RequestRows(spec).request(day)).json()
        assert pinned["model_version"] == "2" and pinned["outputs"][0]["data"] == predictions(registry, "2", spec, day)


def bad_requests(spec, day):
    good = RequestRows(spec).request(day.head(2))

    def edited(column, values):
        request = json.loads(json.dumps(good))
        next(t for t in request["inputs"] if t["name"] == column)["data"] = values
        return json.dumps(request).encode()

    def without(column):
        return json.dumps({"inputs": [t for t in good["inputs"] if t["name"] != column]}).encode()

    def extra():
        return json.dumps({"inputs": good["inputs"] + [{"name": "x", "shape": [2], "datatype": "FP64",
                                                        "data": [1, 2]}]}).encode()
    ok = json.dumps(good).encode()
    return [  # (name, path, body, content type, status, words the error must hold)
        ("malformed JSON", URL, b'{"inputs": [', "application/json", 400, "malformed JSON"),
        ("content type", URL, ok, "text/plain", 415, "application/json"),
        ("unknown model", "/v2/models/nope/infer", ok, "application/json", 404, "unknown model 'nope'"),
        ("unknown version", "/v2/models/rental_model/versions/9/infer", ok, "application/json", 404, "v9"),
        ("missing field", URL, without("temp"), "application/json", 400, "temp: missing input"),
        ("extra field", URL, extra(), "application/json", 400, "x: not an input"),
        ("wrong type", URL, edited("hr", ["5", 6]), "application/json", 400, "hr: '\"5\"' is not a int [type.int]"),
        ("NaN", URL, edited("temp", [0.5, None]).replace(b"null", b"NaN"), "application/json", 400, "[finite]"),
        ("infinity", URL, edited("hum", [0.5, None]).replace(b"null", b"-Infinity"), "application/json", 400,
         "hum: -inf is not finite [finite]"),
        ("out of range", URL, edited("windspeed", [0.5, 2.0]), "application/json", 400, "[range.max]"),
        ("oversized body", URL, ok + b" " * 5000, "application/json", 413, "limit of 4000 bytes"),
        ("too many rows", URL, json.dumps(RequestRows(spec).request(day.head(11))).encode(), "application/json",
         413, "the limit is 10"),
        ("no rows", URL, json.dumps(RequestRows(spec).request(day.head(0))).encode(), "application/json",
         400, "no rows"),
    ]


def test_every_bad_input_is_a_4xx_naming_what_is_wrong_and_the_server_serves_on(spec, day, server):
    client, _ = server(max_body_bytes=4000, max_rows=10)
    with client:
        wait_ready(client)
        for name, path, body, media, status, words in bad_requests(spec, day):
            answer = client.post(path, content=body, headers={"content-type": media})
            assert (answer.status_code, name) == (status, name), answer.text
            assert words in answer.json()["error"], (name, answer.json())
            assert client.post(URL, json=RequestRows(spec).request(day.head(1))).status_code == 200, name
        refused = client.post(URL, content=bad_requests(spec, day)[9][2], headers={"content-type": "application/json"})
        assert refused.json()["details"] == [{"row": 1, "field": "windspeed", "rule": "range.max",
                                              "message": "windspeed: 2.0 above maximum 1 [range.max]"}]


def test_a_moved_alias_swaps_the_version_served(spec, day, registry, server):
    client, _ = server()
    with client:
        wait_ready(client)
        request = RequestRows(spec).request(day.head(3))
        assert client.post(URL, json=request).json()["model_version"] == "1"
        registry.aliases = {CHAMPION: "2"}
        deadline = time.time() + 10
        while (answer := client.post(URL, json=request).json())["model_version"] != "2":
            assert time.time() < deadline
        assert answer["outputs"][0]["data"] == predictions(registry, "2", spec, day.head(3))
        assert client.get("/v2/models/rental_model").json()["versions"] == ["2"]


def test_canary_answers_from_the_challenger_and_shadow_only_logs_it(spec, day, registry, server):
    client, storage = server(canary_share=1.0)
    with client:
        wait_ready(client)
        canary = client.post(URL, json=RequestRows(spec).request(day)).json()
    assert canary["model_version"] == "2" and canary["parameters"]["role"] == "canary"
    client, storage = server(shadow=True)
    with client:
        wait_ready(client)
        shadowed = client.post(URL, json={"id": "shadowed", **RequestRows(spec).request(day)}).json()
    assert shadowed["model_version"] == "1" and len(shadowed["outputs"]) == 1
    logged = read_day(spec, storage, DAY)
    shadow_rows = logged.filter(logged["request_id"] == "shadowed")
    assert shadow_rows["shadow_version"].unique().to_list() == ["2"]
    assert shadow_rows["shadow_prediction"].to_list() == predictions(registry, "2", spec, day)
    assert shadow_rows["prediction"].to_list() == shadowed["outputs"][0]["data"]


def test_sampled_requests_are_written_to_the_lake_by_day(spec, day, server):
    client, storage = server(log_sample=1.0)
    with client:
        wait_ready(client)
        for i in range(3):
            client.post(URL, json={"id": f"r{i}", **RequestRows(spec).request(day.slice(i * 8, 8))})
    logged = read_day(spec, storage, DAY)
    assert logged.height == 24 and sorted(logged["request_id"].unique()) == ["r0", "r1", "r2"]
    inputs = day.drop("cnt", "casual", "registered")
    assert logged.select(inputs.columns).equals(inputs)
    assert (logged["latency_ms"] > 0).all() and set(logged["request_rows"]) == {8}
    assert set(logged["model_version"]) == {"1"} and set(logged["role"]) == {"champion"}
    client, storage = server(log_sample=0.0)
    with client:
        wait_ready(client)
        client.post(URL, json={"id": "unsampled", **RequestRows(spec).request(day.head(1))})
    assert "unsampled" not in read_day(spec, storage, DAY)["request_id"].to_list()
