"""The online tier's traffic, sampled into the lake: the rows a request carried (as the contract typed
them), what was served, by which version, in how long.

Requests are sampled whole (`sample_share`), buffered in memory and written off the request path every
`flush_s` seconds as one parquet file per use case, day and flush, named after the process
(`<name>/online_log/<day>/<time>-<host>-<pid>-<n>.parquet`): writers never share a file, and each
write is atomic (`Storage`). A row belongs to the day of its event column, as in the batch tables.
`<entity>_online_predictions` gathers a day's files (`read_day`).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from datetime import datetime, timezone

import polars as pl

from ml.spec import UseCaseSpec
from resources.storage import Storage

log = logging.getLogger(__name__)
# Columns each logged row carries beside its inputs.
SERVED = {"prediction": pl.Float64, "model_version": pl.String, "role": pl.String, "shadow_prediction": pl.Float64,
          "shadow_version": pl.String, "request_id": pl.String, "served_at": pl.Datetime("us", "UTC"),
          "latency_ms": pl.Float64, "request_rows": pl.Int64}


def day_prefix(spec: UseCaseSpec, day: str) -> str:
    return f"{spec.name}/online_log/{day}/"


def read_day(spec: UseCaseSpec, storage: Storage, day: str) -> pl.DataFrame | None:
    """Every logged row of `day` (None when nothing was logged), in the order written."""
    keys = [k for k in storage.list_keys(day_prefix(spec, day)) if k.endswith(".parquet")]
    if not keys:
        return None
    return pl.concat([storage.read_parquet(k) for k in keys], how="diagonal_relaxed")


class RequestLog:
    """Buffers sampled requests and writes them to the lake from its own thread."""

    def __init__(self, storage: Storage, sample_share: float, flush_s: float):
        self.storage, self.sample_share, self.flush_s = storage, sample_share, flush_s
        self._pending: list[tuple[UseCaseSpec, pl.Schema, dict[str, list], dict]] = []
        self._lock = threading.Lock()
        self._flushes = 0
        self._writer = f"{socket.gethostname()}-{os.getpid()}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="request-log", daemon=True)

    def sampled(self) -> bool:
        return self.sample_share >= 1.0 or random.random() < self.sample_share

    def record(self, spec: UseCaseSpec, schema: pl.Schema, rows: dict[str, list], served: dict) -> None:
        """Queue a request's rows (typed values per column, `schema` their table's types) with what was
        served (`SERVED`: per-row lists or one value per request). The table is built when written, for
        every queued request at once: off the request path."""
        with self._lock:
            self._pending.append((spec, schema, rows, served))

    def flush(self) -> int:
        """Write what is queued; returns the rows written."""
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return 0
        self._flushes += 1
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        written = 0
        for spec in {id(s): s for s, _, _, _ in pending}.values():
            mine = [(schema, rows, served) for s, schema, rows, served in pending if s is spec]
            schema = mine[0][0]
            columns: dict[str, list] = {k: [] for k in [*schema, *SERVED]}
            for _, rows, served in mine:  # per-row lists as they are, one value per request repeated
                height = len(next(iter(rows.values())))
                for k in schema:
                    columns[k].extend(rows[k])
                for k in SERVED:
                    value = served[k]
                    columns[k].extend(value if isinstance(value, list) else [value] * height)
            table = pl.DataFrame(columns, schema={**schema, **SERVED})
            days = table[spec.event_date].cast(pl.Date).cast(pl.String)
            for (day,), part in table.with_columns(days.alias("_day")).partition_by("_day", as_dict=True).items():
                key = f"{day_prefix(spec, day)}{stamp}-{self._writer}-{self._flushes}.parquet"
                started = time.perf_counter()
                self.storage.write_parquet(key, part.drop("_day"))
                written += part.height
                time.sleep(time.perf_counter() - started)  # half the time at most: the event loop keeps a core
        return written

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            try:
                self.flush()
            except Exception:  # the lake away for a moment: the rows are lost, serving goes on
                log.exception("writing the request log failed")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.flush()
