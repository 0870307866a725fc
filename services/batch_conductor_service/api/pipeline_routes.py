from dishka import FromDishka
from quart import Blueprint, Response, request
from quart_dishka import inject
from werkzeug.exceptions import HTTPException

from batch_conductor_service.api.correlation import adopt_correlation_id
from batch_conductor_service.api.models import PipelineDefineRequest, define_response_body
from batch_conductor_service.api.request_body import parse_json_body
from batch_conductor_service.api.request_log import note
from batch_conductor_service.api.responses import error_response, json_response
from batch_conductor_service.api.tracing import request_trace_context
from batch_conductor_service.dead_letter.resolution_sender import FailedResolutionDeadLetters
from batch_conductor_service.domain.preconditions import PreconditionFailedError
from batch_conductor_service.domain.resolution_rules import UnknownPipelineError
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.protocols import PipelineResolutionServiceProtocol
from huleedu_service_libs.log_bounds import clip_error, clip_id

pipeline_bp = Blueprint("pipelines", __name__, url_prefix="/internal/v1/pipelines")

# Answered by the app's error handlers (400, 503, the HTTP error itself): not a failed resolution.
_ANSWERED_ERRORS = (UnknownPipelineError, StateStoreUnavailableError, HTTPException)


@pipeline_bp.post("/define")
@inject
async def define_pipeline(
    service: FromDishka[PipelineResolutionServiceProtocol],
    dead_letters: FromDishka[FailedResolutionDeadLetters],
) -> Response:
    data = await request.get_data(as_text=False)
    raw = data if isinstance(data, bytes) else data.encode()
    try:
        return await _define(raw, service)
    except _ANSWERED_ERRORS:
        raise
    except Exception as exc:
        # A bug: the request goes to the dead-letter topic for replay (in the background, at a
        # bounded rate); the app's handler logs it and answers 500.
        dead_letters.submit(raw, clip_error(exc), adopt_correlation_id(), request_trace_context())
        raise


async def _define(raw: bytes, service: PipelineResolutionServiceProtocol) -> Response:
    payload = parse_json_body(raw, PipelineDefineRequest)
    if isinstance(payload, Response):
        return payload
    metadata = payload.batch_metadata
    note(
        batch_id=clip_id(payload.batch_id),
        requested_pipeline=clip_id(payload.requested_pipeline),
        # Free-form and up to the body limit in size: its keys tell enough for a log line.
        batch_metadata_keys=[clip_id(k) for k in sorted(metadata)[:20]] if metadata else [],
    )
    try:
        resolution = await service.resolve(payload.batch_id, payload.requested_pipeline, metadata)
    except PreconditionFailedError as exc:
        return error_response(
            400, "precondition_failed", {"message": str(exc), "flags": sorted(exc.failed)}
        )
    note(
        final_pipeline=list(resolution.final_pipeline),
        pruned=[pruned.step for pruned in resolution.pruned],
    )
    return json_response(200, define_response_body(resolution))
