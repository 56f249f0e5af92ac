"""The model server: the Open Inference Protocol (KServe V2 REST) over every use case's champion.

| route | |
| --- | --- |
| `GET /v2/health/live`, `GET /v2/health/ready` | the process answers; the registry was read and a champion loaded |
| `GET /v2/models/{name}` (and `/versions/{version}`) | inputs with their types, the output, the versions served |
| `GET /v2/models/{name}/ready` | this model's champion is loaded |
| `POST /v2/models/{name}/infer` (and `/versions/{version}/infer`) | score rows of the spec's raw columns |

A model is named as in the registry (`rental_model`). Every inference response names the version that
produced it (`model_version`, header `x-model-version`). Bad input is a 4xx naming the field and the rule;
nothing a client sends stops the server.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

import polars as pl
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from assets.common import stage_days, table_key
from assets.training import model_name
from ml.spec import UseCaseSpec
from resources.mlflow_tracking import MlflowResource
from resources.storage import Storage
from serving.batching import Batcher
from serving.models import Deployment, ModelWatcher, ServedModel
from serving.protocol import OUTPUT, ProtocolError, infer_response, parse_request
from serving.request_log import RequestLog
from serving.rows import MEMO_CELLS, RequestError, RequestRows


@dataclass(frozen=True)
class Settings:
    """The server's knobs; each has an environment variable (`SERVING_<FIELD>`, upper case)."""

    poll_s: float = 10.0  # how often the registry's aliases are read
    max_body_bytes: int = 8 * 1024 * 1024
    max_rows: int = 10_000  # rows in one request
    batch_rows: int = 16_384  # rows judged and scored in one pass (see serving.batching)
    memo_cells: int = MEMO_CELLS  # distinct values remembered per input column (serving.rows); 0: none
    warm_days: int = 90  # the lake's latest validated days whose rows fill the memos at start-up (a training window)
    onnx_threads: int = 2  # threads of an ONNX call of serving.models.WIDE_ROWS rows or more (fewer, or trees: one)
    canary_share: float = 0.0  # share of unversioned requests the challenger answers
    shadow: bool = False  # the challenger scores every request too; logged, never returned
    log_sample: float = 1.0  # share of requests written to the request log
    log_flush_s: float = 5.0

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        values = {}
        for name, field in cls.__dataclass_fields__.items():
            variable, kind = f"SERVING_{name.upper()}", type(field.default)
            text = os.getenv(variable)
            if text is None:
                continue
            try:
                values[name] = text.strip().lower() in ("1", "true", "yes") if kind is bool else kind(text)
            except ValueError:
                raise ValueError(f"{variable}={text!r}: expected {kind.__name__}") from None
        return cls(**{**values, **{k: v for k, v in overrides.items() if v is not None}})


def _json(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


async def _body(request: Request, limit: int) -> bytes:
    """The body, refused with a 413 as soon as it is known to exceed `limit` (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ProtocolError(413, f"body of {declared} bytes exceeds the limit of {limit} bytes "
                                 "(SERVING_MAX_BODY_BYTES)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProtocolError(413, f"body exceeds the limit of {limit} bytes (SERVING_MAX_BODY_BYTES)")
        chunks.append(chunk)
    return b"".join(chunks)


# Broken rules listed in a refusal; the message says how many there were in all.
MAX_DETAILS = 1000


def _refusal(error: RequestError) -> ProtocolError:
    return ProtocolError(400, str(error), [e.as_dict() for e in error.errors[:MAX_DETAILS]])


def recent_validated(spec: UseCaseSpec, storage: Storage, days: int) -> pl.DataFrame:
    """The rows of the latest `days` validated tables in the lake (none: an empty frame)."""
    recent = stage_days(spec, storage, "validated")[-days:] if days > 0 else []
    tables = [storage.read_parquet(table_key(spec, "validated", day)) for day in recent]
    return pl.concat(tables, how="diagonal_relaxed") if tables else pl.DataFrame()


def create_app(specs: list[UseCaseSpec], storage: Storage, mlflow: MlflowResource, settings: Settings) -> Starlette:
    models = {model_name(spec): spec for spec in specs}
    rows = {name: RequestRows(spec, settings.memo_cells) for name, spec in models.items()}
    for name, spec in models.items():
        rows[name].warm(recent_validated(spec, storage, settings.warm_days))
    batchers = {name: Batcher(rows[name], settings.batch_rows) for name in models}
    watcher = ModelWatcher(mlflow, models, settings.poll_s, settings.onnx_threads)
    request_log = RequestLog(storage, settings.log_sample, settings.log_flush_s)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        for part in (watcher, request_log):
            part.start()
        yield
        for part in (watcher, request_log):  # the log last: it writes what was answered
            part.stop()

    async def refused(request: Request, error: ProtocolError) -> Response:
        return _json(error.body(), error.status)

    async def http_error(request: Request, error: HTTPException) -> Response:
        return _json({"error": f"{request.method} {request.url.path}: {error.detail}"}, error.status_code)

    def deployment(name: str) -> Deployment:
        if name not in models:
            raise ProtocolError(404, f"unknown model {name!r}; this server serves {', '.join(models)}")
        return watcher.deployments[name]

    def ready(name: str) -> bool:
        return watcher.polled.is_set() and watcher.deployments[name].champion is not None

    async def server_metadata(request: Request) -> Response:
        return _json({"name": "dagster-ml-reference", "version": "2", "extensions": [], "models": list(models)})

    async def live(request: Request) -> Response:
        return _json({"live": True})

    async def server_ready(request: Request) -> Response:
        """Ready once the registry was read and a champion loaded; a use case without a champion in the
        registry yet (listed) does not hold the others back."""
        serving = [name for name in models if ready(name)]
        waiting = sorted(set(models) - set(serving))
        return _json({"ready": bool(serving), "models": serving, "without_champion": waiting}, 200 if serving else 503)

    async def model_ready(request: Request) -> Response:
        name = request.path_params["name"]
        deployment(name)
        return _json({"name": name, "ready": ready(name)}, 200 if ready(name) else 503)

    async def model_metadata(request: Request) -> Response:
        name, version = request.path_params["name"], request.path_params.get("version")
        current = deployment(name)
        served = [m.version for m in (current.champion, current.challenger) if m is not None]
        if version is not None and version not in served:
            raise ProtocolError(404, f"{name} v{version} is not served; served: {served or 'none yet'}")
        return _json({
            "name": name, "versions": served, "platform": "onnxruntime_onnx",
            "inputs": rows[name].metadata(),
            "outputs": [{"name": OUTPUT, "datatype": "FP64", "shape": [-1]}],
            "parameters": {"use_case": models[name].name,
                           "champion_version": current.champion and current.champion.version,
                           "challenger_version": current.challenger and current.challenger.version,
                           "canary_share": settings.canary_share, "shadow": settings.shadow},
        })

    def choose(name: str, version: str | None) -> tuple[ServedModel, str, ServedModel | None]:
        """(the model that answers, its role, the model scoring in shadow): taken once, so a swap during the
        request does not change which sessions score it."""
        current = deployment(name)
        if current.champion is None:
            raise ProtocolError(503, f"{name} has no champion loaded yet: train and promote one, or wait for "
                                     f"the registry poll (every {settings.poll_s:g} s)")
        if version is not None:
            pinned = current.by_version(version)
            if pinned is None:
                raise ProtocolError(404, f"{name} v{version} is not served; served: champion "
                                         f"v{current.champion.version}" + (f", challenger v{current.challenger.version}"
                                                                          if current.challenger else ""))
            return pinned, "champion" if pinned is current.champion else "challenger", None
        if current.challenger is not None and settings.canary_share > 0 and random.random() < settings.canary_share:
            return current.challenger, "canary", None
        return current.champion, "champion", current.challenger if settings.shadow else None

    async def infer(request: Request) -> Response:
        started = time.perf_counter()
        name, version = request.path_params["name"], request.path_params.get("version")
        deployment(name)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            raise ProtocolError(415, f"content type {media or 'missing'!r}; send application/json")
        payload = parse_request(await _body(request, settings.max_body_bytes))
        spec_rows = rows[name]
        try:
            columns = spec_rows.columns(payload.inputs)
        except RequestError as e:
            raise _refusal(e) from None
        n = len(next(iter(columns.values())))
        if n == 0:
            raise ProtocolError(400, "the request has no rows")
        if n > settings.max_rows:
            raise ProtocolError(413, f"{n} rows in one request; the limit is {settings.max_rows} (SERVING_MAX_ROWS)")
        model, role, shadow = choose(name, version)
        try:
            scored = await batchers[name].score(spec_rows.cells(columns), n, model, shadow)
        except RequestError as e:
            raise _refusal(e) from None
        request_id = payload.id or uuid.uuid4().hex
        predictions = scored.prediction.tolist()
        latency_ms = (time.perf_counter() - started) * 1000
        if request_log.sampled():
            request_log.record(models[name], spec_rows.schema, scored.typed, {
                "prediction": predictions, "model_version": model.version, "role": role,
                "shadow_prediction": None if scored.shadow is None else scored.shadow.tolist(),
                "shadow_version": shadow and shadow.version, "request_id": request_id,
                "served_at": datetime.now(timezone.utc), "latency_ms": latency_ms, "request_rows": n})
        return _json(infer_response(name, model.version, request_id, predictions,
                                    {"use_case": models[name].name, "role": role}),
                     headers={"x-model-version": model.version})

    models_path = "/v2/models/{name}"
    return Starlette(routes=[
        Route("/v2", server_metadata),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", server_ready),
        Route(models_path, model_metadata),
        Route(f"{models_path}/ready", model_ready),
        Route(f"{models_path}/versions/{{version}}", model_metadata),
        Route(f"{models_path}/infer", infer, methods=["POST"]),
        Route(f"{models_path}/versions/{{version}}/infer", infer, methods=["POST"]),
    ], exception_handlers={ProtocolError: refused, HTTPException: http_error}, lifespan=lifespan)
