"""The online tier's traffic, sampled into the lake: the rows a request carried (as the contract typed
them), what was served, by which version, in how long.

Requests are sampled whole (`sample_share`) and queued in memory. A thread ships the queue every
`SHIP_S` to a writer process, which writes what it received every `flush_s` seconds as one parquet
file per use case, day and flush, named after the server process
(`<name>/online_log/<day>/<time>-<host>-<pid>-w<writer>-<n>.parquet`): writers never share a file, and
each write is atomic (`Storage`). A writer that exits is replaced (rows sampled until then are dropped
and counted). Building and writing the tables costs milliseconds per file (a flush of
rows spread over 90 days: ~250 ms of CPU); in the server's process that held the GIL away from the
event loop, the tail of every request around a flush. The server's share is now one pickle per ship.
A row belongs to the day of its event column, as in the batch tables. `<entity>_online_predictions`
gathers a day's files (`read_day`).
"""

from __future__ import annotations

import logging
import multiprocessing
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


def day_prefix(use_case: str, day: str) -> str:
    return f"{use_case}/online_log/{day}/"


def read_day(spec: UseCaseSpec, storage: Storage, day: str) -> pl.DataFrame | None:
    """Every logged row of `day` (None when nothing was logged), in the order written."""
    keys = [k for k in storage.list_keys(day_prefix(spec.name, day)) if k.endswith(".parquet")]
    if not keys:
        return None
    return pl.concat([storage.read_parquet(k) for k in keys], how="diagonal_relaxed")


# How often queued requests go to the writer process: small pickles, so no pause of the event loop.
SHIP_S = 0.2
# Seconds between starting a writer and starting another if it exits again.
WRITER_RESTART_S = 5.0


class RequestLog:
    """Queues sampled requests and hands them to its writer process; a writer that exits is replaced."""

    def __init__(self, storage: Storage, sample_share: float, flush_s: float):
        self.sample_share = sample_share
        self._pending: list[tuple[str, str, pl.Schema, dict[str, list], dict]] = []
        self._lock = threading.Lock()
        # The storage goes as its class and settings: a resource in use holds clients that do not pickle.
        self._writer_args = (type(storage), storage.model_dump(), flush_s)
        self._generation = 0  # writers started: each names its files apart (`<host>-<pid>-w<generation>`)
        self._process, self._sender, self._next_start = None, None, 0.0
        self._down, self._dropped = False, 0  # the writer exited and none replaced it yet; rows lost meanwhile
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._ship_loop, name="request-log-ship", daemon=True)

    def sampled(self) -> bool:
        return self.sample_share >= 1.0 or random.random() < self.sample_share

    def record(self, spec: UseCaseSpec, schema: pl.Schema, rows: dict[str, list], served: dict) -> None:
        """Queue a request's rows (typed values per column, `schema` their table's types) with what was
        served (`SERVED`: per-row lists or one value per request). The writer process builds the tables."""
        with self._lock:
            self._pending.append((spec.name, spec.event_date, schema, rows, served))

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no locks or threads inherited
        receiver, self._sender = context.Pipe(duplex=False)
        self._generation += 1
        writer = f"{socket.gethostname()}-{os.getpid()}-w{self._generation}"
        self._process = context.Process(target=write_loop, name="request-log", daemon=True,
                                        args=(receiver, *self._writer_args, writer))
        self._process.start()
        receiver.close()  # the writer holds its own end: were this one open, a dead writer's pipe would fill
        self._next_start = time.monotonic() + WRITER_RESTART_S

    def _ship(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        if not self._process.is_alive() and not self._replace():  # never block on a pipe nobody reads
            self._dropped += sum(len(next(iter(rows.values()))) for _, _, _, rows, _ in pending)
            return
        if pending:
            self._sender.send(pending)

    def _replace(self) -> bool:
        """Start another writer for one that exited; whether one runs now. Not sooner than
        `WRITER_RESTART_S` after the last start, so a writer that cannot run is not respawned in a loop;
        the rows sampled until one runs are dropped (memory stays bounded) and counted."""
        if not self._down:
            self._down = True
            log.error("the request log's writer exited (code %s)", self._process.exitcode)
        if time.monotonic() < self._next_start:
            return False
        self._sender.close()
        self._spawn()
        log.error("request log writer %d started; %d sampled rows were dropped while none ran",
                  self._generation, self._dropped)
        self._down, self._dropped = False, 0
        return True

    def _ship_loop(self) -> None:
        while not self._stop.wait(SHIP_S):
            try:
                self._ship()
            except (OSError, ValueError):  # the writer went away mid-send: those rows are lost, serving goes on
                log.exception("handing the request log to its writer failed")

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def stop(self) -> None:
        """Ship what is queued and wait for the writer to write it."""
        self._stop.set()
        self._thread.join(timeout=30)
        try:
            if self._process.is_alive():  # a dead writer is not replaced at shutdown
                self._ship()
                self._sender.send(None)
        except (OSError, ValueError):
            log.exception("handing the request log to its writer failed")
        self._process.join(timeout=60)


def write_loop(receiver, storage_class: type[Storage], settings: dict, flush_s: float, writer: str) -> None:
    """The writer process: collect shipped requests, write them every `flush_s` seconds, and once more
    when the server says stop (None) or goes away. At a lower priority than the server: on a small
    machine its bursts of CPU would otherwise take the core the event loop was on."""
    os.nice(10)
    storage = storage_class(**settings)
    pending: list = []
    flushes, due = 0, time.monotonic() + flush_s
    while True:
        stop = False
        try:
            if receiver.poll(max(due - time.monotonic(), 0.0)):
                batch = receiver.recv()
                stop = batch is None
                pending.extend(batch or [])
        except (EOFError, OSError):  # the server is gone
            stop = True
        if pending and (stop or time.monotonic() >= due):
            flushes += 1
            try:
                write_tables(storage, pending, f"{writer}-{flushes}")
            except Exception:  # the lake away for a moment: the rows are lost, serving goes on
                log.exception("writing the request log failed")
            pending = []
        if stop:
            return
        if time.monotonic() >= due:
            due = time.monotonic() + flush_s


def write_tables(storage: Storage, pending: list, name: str) -> int:
    """One parquet file per use case and day of the queued requests; returns the rows written."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    written = 0
    for use_case, event_date in {(u, e) for u, e, _, _, _ in pending}:
        mine = [(schema, rows, served) for u, _, schema, rows, served in pending if u == use_case]
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
        days = table[event_date].cast(pl.Date).cast(pl.String)
        for (day,), part in table.with_columns(days.alias("_day")).partition_by("_day", as_dict=True).items():
            storage.write_parquet(f"{day_prefix(use_case, day)}{stamp}-{name}.parquet", part.drop("_day"))
            written += part.height
    return written
