from typing import Any

import orjson
from dishka import FromDishka
from pydantic import ValidationError
from quart import Blueprint, Response, g, request
from quart_dishka import inject

from batch_conductor_service.api.models import PipelineDefineRequest, PipelineDefineResponse
from batch_conductor_service.api.responses import error_response, json_response
from batch_conductor_service.protocols import PipelineResolutionServiceProtocol
from huleedu_service_libs.correlation import usable_correlation_id
from huleedu_service_libs.logging_utils import bind_correlation_id, get_logger

pipeline_bp = Blueprint("pipelines", __name__, url_prefix="/internal/v1/pipelines")
logger = get_logger(__name__)


@pipeline_bp.post("/define")
@inject
async def define_pipeline(
    service: FromDishka[PipelineResolutionServiceProtocol],
) -> Response:
    raw = await request.get_data(as_text=False)
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return error_response(400, "invalid_json", "request body is not valid UTF-8 JSON")
    if not isinstance(body, dict):
        return error_response(400, "invalid_request", "request body must be a JSON object")
    supplied = body.get("correlation_id")
    if correlation_id := usable_correlation_id(supplied):
        g.correlation_id = correlation_id
        bind_correlation_id(correlation_id)
    elif supplied is not None:
        logger.warning("correlation_id_not_adopted", supplied=repr(supplied)[:100])
    try:
        payload = PipelineDefineRequest.model_validate(body)
    except ValidationError as exc:
        detail = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        return error_response(400, "validation_failed", detail)
    logger.info(
        "pipeline_define_requested",
        batch_id=payload.batch_id,
        requested_pipeline=payload.requested_pipeline,
        # Free-form and up to the body limit in size: its keys tell enough for a log line.
        batch_metadata_keys=sorted(payload.batch_metadata or {})[:20],
    )
    resolution = await service.resolve(payload.batch_id, payload.requested_pipeline)
    return json_response(200, PipelineDefineResponse.from_resolution(resolution).model_dump())
