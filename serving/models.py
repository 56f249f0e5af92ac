"""Which ONNX versions a server holds: each use case's champion (and challenger), following the registry.

A `Deployment` is immutable and replaced whole when an alias moves: a request takes the deployment once
when it arrives and is scored by the sessions it took, so a swap never drops or mixes an in-flight
request; the old sessions go when the last request holding them is done. A registry that cannot be read
for a moment leaves the server on the versions it has.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from ml.features import feature_names
from ml.onnx_scoring import OnnxModel
from ml.spec import UseCaseSpec
from resources.mlflow_tracking import CHALLENGER, CHAMPION, MlflowResource

log = logging.getLogger(__name__)


# Rows from which an ONNX call goes to the session on several threads: below, waking a second thread
# costs more than it saves (one row: +0.09 ms; 1,000 rows: -4 ms of 18 on two threads). A tree
# ensemble has no such session: it scores on one thread (ml.onnx_scoring.TREE_OPS says why).
WIDE_ROWS = 256


@dataclass(frozen=True)
class ServedModel:
    version: str
    model: OnnxModel  # one thread
    wide: OnnxModel | None = None  # the same model on the watcher's `threads`, for WIDE_ROWS rows and more
    # (never for a tree ensemble)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.wide if self.wide is not None and len(X) >= WIDE_ROWS else self.model).predict(X)


def served_model(version: str, onnx: bytes, threads: int) -> ServedModel:
    """One version's sessions: one thread, and `threads` for wide calls unless it is a tree ensemble."""
    model = OnnxModel(onnx, threads=1)
    return ServedModel(version, model, OnnxModel(onnx, threads=threads) if threads > 1 and not model.trees else None)


@dataclass(frozen=True)
class Deployment:
    champion: ServedModel | None = None
    challenger: ServedModel | None = None  # only when it differs from the champion

    def by_version(self, version: str) -> ServedModel | None:
        return next((m for m in (self.champion, self.challenger) if m is not None and m.version == version), None)


class ModelWatcher:
    """Polls the registry's aliases every `poll_s` seconds and swaps in the versions they name, each loaded
    from its registered ONNX artifact and warmed up before it takes traffic; with `threads` > 1, also as a
    session on that many threads for large calls (`WIDE_ROWS`), unless it is a tree ensemble."""

    def __init__(self, mlflow: MlflowResource, specs: dict[str, UseCaseSpec], poll_s: float, threads: int = 1):
        self.mlflow, self.specs, self.poll_s, self.threads = mlflow, specs, poll_s, threads
        self.deployments: dict[str, Deployment] = {name: Deployment() for name in specs}
        self.polled = threading.Event()  # set once the first poll finished (readiness)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="model-watcher", daemon=True)

    def _load(self, spec: UseCaseSpec, name: str, version: str, current: Deployment) -> ServedModel:
        held = current.by_version(version)
        if held is not None:
            return held
        onnx = self.mlflow.load_onnx(name, version)
        served = served_model(version, onnx, self.threads)
        for model in (served.model, served.wide):
            if model is not None:  # the first call allocates
                model.predict(np.zeros((1, len(feature_names(spec))), dtype=np.float32))
        log.warning("loaded %s v%s", name, version)
        return served

    def refresh(self) -> None:
        """Read every model's aliases once and swap in what changed."""
        for name, spec in self.specs.items():
            current = self.deployments[name]
            champion = self.mlflow.version_by_alias(name, CHAMPION)
            challenger = self.mlflow.version_by_alias(name, CHALLENGER)
            # An alias that cannot be read (the registry busy, or away) keeps the champion that is loaded.
            wanted = (champion.version if champion else current.champion and current.champion.version,
                      challenger and challenger.version)
            held = (current.champion and current.champion.version, current.challenger and current.challenger.version)
            if wanted[1] == wanted[0]:
                wanted = (wanted[0], None)
            if wanted == held:
                continue
            self.deployments[name] = Deployment(  # one reference assignment: the swap
                champion=self._load(spec, name, wanted[0], current) if wanted[0] else None,
                challenger=self._load(spec, name, wanted[1], current) if wanted[1] else None)
            log.warning("%s now serves champion %s, challenger %s", name, wanted[0], wanted[1])

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # the registry away for a moment: keep serving what is loaded
                log.exception("registry poll failed; serving the versions loaded")
            self.polled.set()
            self._stop.wait(self.poll_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
