"""The request log's writer process: rows land in the lake per day, and a dead writer is replaced."""

import os
import threading
import time
from datetime import datetime, timezone

import polars as pl

from ml.usecases import BIKE_RENTALS as SPEC
from resources.storage import LocalStorage
from serving import request_log
from serving.request_log import RequestLog, read_day

SCHEMA = pl.Schema({SPEC.event_date: pl.Datetime("us"), "temp": pl.Float64})


def served(n: int, version: str) -> dict:
    return {"prediction": [1.0] * n, "model_version": version, "role": "champion", "shadow_prediction": None,
            "shadow_version": None, "request_id": f"r{version}", "served_at": datetime.now(timezone.utc),
            "latency_ms": 1.0, "request_rows": n}


def test_rows_are_written_per_day_by_the_writer_process(tmp_path):
    storage = LocalStorage(root=str(tmp_path))
    log = RequestLog(storage, sample_share=1.0, flush_s=0.1)
    log.start()
    log.record(SPEC, SCHEMA, {SPEC.event_date: [datetime(2011, 6, 1, 5), datetime(2011, 6, 2, 7)], "temp": [0.3, 0.4]},
               served(2, "3"))
    log.record(SPEC, SCHEMA, {SPEC.event_date: [datetime(2011, 6, 1, 9)], "temp": [0.5]}, served(1, "4"))
    log.stop()
    assert not log._process.is_alive()
    first, second = read_day(SPEC, storage, "2011-06-01"), read_day(SPEC, storage, "2011-06-02")
    assert first["temp"].to_list() == [0.3, 0.5] and first["model_version"].to_list() == ["3", "4"]
    assert second["temp"].to_list() == [0.4] and second["request_rows"].to_list() == [2]
    keys = storage.list_keys(f"{SPEC.name}/online_log/")
    assert keys and all(f"-{os.getpid()}-" in k for k in keys)  # named after the server's process


def test_a_dead_writer_is_replaced_and_blocks_nothing(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(request_log, "WRITER_RESTART_S", 1.0)
    storage = LocalStorage(root=str(tmp_path))
    log = RequestLog(storage, sample_share=1.0, flush_s=0.1)
    log.start()
    first = log._process
    first.kill()
    first.join()
    many = 200_000  # more than a pipe holds: a writer that is gone must not block the server
    for _ in range(3):
        log.record(SPEC, SCHEMA, {SPEC.event_date: [datetime(2011, 6, 1, 5)] * many, "temp": [0.3] * many},
                   served(many, "3"))
        time.sleep(0.3)  # a ship in between
    deadline = time.monotonic() + 20
    while (log._process is first or not log._process.is_alive()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert log._process is not first and log._process.is_alive()  # replaced, not sooner than 1 s after the start
    assert "request log writer 2 started" in caplog.text and "rows were dropped" in caplog.text
    log.record(SPEC, SCHEMA, {SPEC.event_date: [datetime(2011, 6, 2, 7)], "temp": [0.4]}, served(1, "3"))
    stopping = threading.Thread(target=log.stop)
    stopping.start()
    stopping.join(timeout=20)
    assert not stopping.is_alive() and not log._pending
    assert read_day(SPEC, storage, "2011-06-02")["temp"].to_list() == [0.4]  # written by the replacement
    assert all("-w2-" in k for k in storage.list_keys(f"{SPEC.name}/online_log/2011-06-02/"))
