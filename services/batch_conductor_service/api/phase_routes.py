"""POST /internal/v1/phases/complete: BOS reports a batch-level step outcome (current BOS;
docs/api.md). 200 recorded, 400 bad body or unknown phase, 503
when the store cannot take it (the app's error mapping)."""

from dishka import FromDishka
from quart import Blueprint, Response, request
from quart_dishka import inject

from batch_conductor_service.api.models import PhaseCompleteRequest, PhaseCompleteResponse
from batch_conductor_service.api.phase_reports import PhaseReportService, UnknownPhaseError
from batch_conductor_service.api.request_body import parse_json_body
from batch_conductor_service.api.responses import error_response, json_response

phase_bp = Blueprint("phases", __name__, url_prefix="/internal/v1/phases")


@phase_bp.post("/complete")
@inject
async def complete_phase(service: FromDishka[PhaseReportService]) -> Response:
    data = await request.get_data(as_text=False)
    payload = parse_json_body(
        data if isinstance(data, bytes) else data.encode(), PhaseCompleteRequest
    )
    if isinstance(payload, Response):
        return payload
    try:
        await service.record(payload.batch_id, payload.phase_name, payload.success)
    except UnknownPhaseError as exc:
        return error_response(
            400,
            "unknown_phase",
            {"message": str(exc), "known_steps": exc.known_steps},
        )
    response = PhaseCompleteResponse(
        status="recorded",
        batch_id=payload.batch_id,
        phase_name=payload.phase_name,
        success=payload.success,
    )
    return json_response(200, response.model_dump())
