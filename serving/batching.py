"""Requests that arrive together are judged and scored together.

A pass of the row contract and the feature definition costs about as much for one row as for a thousand
(polars spends it planning some 600 expression nodes, not computing them), so a server that ran one pass
per request would spend its time planning. Each use case's batcher takes every request waiting when its
turn comes — up to `max_rows` rows — and runs one pass and one ONNX call per model over them. An idle
server scores a request at once: nothing waits for a batch to fill. Each request keeps its own outcome:
a refused row refuses its request only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from itertools import chain

import numpy as np

from ml.monitoring import clip_counts
from serving.models import ServedModel
from serving.rows import RequestError, RequestRows


@dataclass(frozen=True)
class Scored:
    typed: dict[str, list]  # the request's rows as the contract typed them, per column
    prediction: np.ndarray
    shadow: np.ndarray | None  # the challenger's output in shadow: logged, never returned


@dataclass(frozen=True)
class _Job:
    cells: dict[str, list[str | None]]
    rows: int
    model: ServedModel
    shadow: ServedModel | None
    future: asyncio.Future


class Batcher:
    def __init__(self, rows: RequestRows, max_rows: int):
        self.rows, self.max_rows = rows, max_rows
        self._waiting: list[_Job] = []
        self._scheduled = False

    async def score(self, cells: dict[str, list[str | None]], rows: int, model: ServedModel,
                    shadow: ServedModel | None) -> Scored:
        """The request's `Scored` rows; raises the `RequestError` naming what its rows broke."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append(_Job(cells, rows, model, shadow, future))
        if not self._scheduled:  # after the handlers already due: requests read in the same turn join
            self._scheduled = True
            loop.call_soon(self._run)
        return await future

    def _run(self) -> None:
        """One pass over the waiting requests (up to `max_rows` rows), in the event loop's own thread: a
        worker thread would contend with the loop for the GIL during the pass's Python parts, and hand-offs
        between threads cost more than a pass of a few milliseconds. Requests arriving meanwhile wait in
        their sockets and form the next batch."""
        jobs, rows = [], 0
        while self._waiting and (not jobs or rows + self._waiting[0].rows <= self.max_rows):
            jobs.append(self._waiting.pop(0))
            rows += jobs[-1].rows
        self._scheduled = bool(self._waiting)
        if self._waiting:
            asyncio.get_running_loop().call_soon(self._run)
        for job, outcome in zip(jobs, self._outcomes(jobs)):
            if job.future.cancelled():  # the client went away
                continue
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)

    def _outcomes(self, jobs: list[_Job]) -> list[Scored | BaseException]:
        try:
            return self._score(jobs)
        except Exception as error:
            if len(jobs) == 1:
                return [error]
            return [self._outcomes([job])[0] for job in jobs]  # alone, a request cannot fail another's

    def _score(self, jobs: list[_Job]) -> list[Scored | BaseException]:
        cells = jobs[0].cells if len(jobs) == 1 else {
            name: list(chain.from_iterable(job.cells[name] for job in jobs)) for name in jobs[0].cells}
        judged = self.rows.judge(cells)
        starts = np.cumsum([0] + [job.rows for job in jobs])
        good_starts = np.concatenate([[0], np.cumsum(~judged.broken)])[starts]
        refused = [bool(judged.broken[a:b].any()) for a, b in zip(starts[:-1], starts[1:])]
        served = [(i, job) for i, job in enumerate(jobs) if not refused[i]]
        outputs = self._predict(judged.X, [(job.model, good_starts[i], job.rows) for i, job in served])
        shadows = self._predict(judged.X, [(job.shadow, good_starts[i], job.rows) for i, job in served
                                           if job.shadow is not None])
        out: list[Scored | BaseException] = []
        for i, job in enumerate(jobs):
            if refused[i]:
                out.append(RequestError(self.rows.errors(job.cells)))
            else:
                a, b = int(starts[i]), int(starts[i + 1])
                rows = judged.typed if len(jobs) == 1 else {n: v[a:b] for n, v in judged.typed.items()}
                out.append(Scored(rows, outputs[int(good_starts[i])], shadows.get(int(good_starts[i]))))
        return out

    @staticmethod
    def _predict(X: np.ndarray, parts: list[tuple[ServedModel, int, int]]) -> dict[int, np.ndarray]:
        """Each part's predictions (keyed by its first row in `X`), one ONNX call per model."""
        out: dict[int, np.ndarray] = {}
        for model in {id(m): m for m, _, _ in parts}.values():
            mine = [(int(start), rows) for m, start, rows in parts if m is model]
            predictions = clip_counts(model.predict(np.concatenate([X[s:s + n] for s, n in mine])))
            offset = 0
            for start, rows in mine:
                out[start] = predictions[offset:offset + rows]
                offset += rows
        return out
