"""A POST body read into its request model, or the 400 that says why it cannot be: the same
checks, in the same order, for every route that takes JSON."""

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from quart import Response

from batch_conductor_service.api.correlation import adopt_correlation_id
from batch_conductor_service.api.responses import error_response
from common_core.validation_errors import field_problems

Model = TypeVar("Model", bound=BaseModel)


def parse_json_body(raw: bytes, model: type[Model]) -> Model | Response:
    """The correlation id is adopted before validation, so a refused body's log lines carry it."""
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return error_response(400, "invalid_json", "request body is not valid UTF-8 JSON")
    if not isinstance(body, dict):
        return error_response(400, "invalid_request", "request body must be a JSON object")
    adopt_correlation_id(body.get("correlation_id"))
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        detail = [{"field": p.field, "message": p.message} for p in field_problems(exc)]
        return error_response(400, "validation_failed", detail)
