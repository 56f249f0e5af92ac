"""The Open Inference Protocol (KServe V2) REST messages: a request's envelope checked by pydantic, the
response and error bodies. What the values mean is `serving.rows`' business, not this module's."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

OUTPUT = "prediction"


class ProtocolError(Exception):
    """A request refused before scoring: an HTTP status, a message and, for row rules, the broken rules."""

    def __init__(self, status: int, message: str, details: list[dict] | None = None):
        super().__init__(message)
        self.status, self.message, self.details = status, message, details

    def body(self) -> dict:
        return {"error": self.message, **({"details": self.details} if self.details else {})}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InferInput(_Strict):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class RequestedOutput(_Strict):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(_Strict):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InferInput]
    outputs: list[RequestedOutput] | None = None


def parse_request(body: bytes) -> InferRequest:
    """The request's envelope, parsed and checked in one pass. JSON's NaN and Infinity tokens are read as
    the numbers they spell, so that the row contract refuses them by field ([finite] for a float column);
    anything else malformed is a 400."""
    try:
        request = InferRequest.model_validate_json(body)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        if errors[0]["type"] == "json_invalid":
            raise ProtocolError(400, f"malformed JSON: {errors[0]['msg'].removeprefix('Invalid JSON: ')}") from None
        problems = [f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in errors[:20]]
        raise ProtocolError(400, "not an Open Inference Protocol request: " + "; ".join(problems)) from None
    if request.outputs and (unknown := [o.name for o in request.outputs if o.name != OUTPUT]):
        raise ProtocolError(400, f"unknown output(s) {unknown}; the model has one output, {OUTPUT!r}")
    return request


def infer_response(model: str, version: str, request_id: str, predictions: list[float], parameters: dict) -> dict:
    return {"model_name": model, "model_version": version, "id": request_id, "parameters": parameters,
            "outputs": [{"name": OUTPUT, "shape": [len(predictions)], "datatype": "FP64", "data": predictions}]}
