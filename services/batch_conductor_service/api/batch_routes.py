"""GET /internal/v1/batches/<batch_id>: what BCS knows of a batch, for an operator."""

from dishka import FromDishka
from pydantic import TypeAdapter, ValidationError
from quart import Blueprint, Response
from quart_dishka import inject
from werkzeug.routing import PathConverter

from batch_conductor_service.api.models import BatchInspectionResponse
from batch_conductor_service.api.responses import error_response, json_response
from batch_conductor_service.protocols import PipelineResolutionServiceProtocol
from common_core.events.building_blocks import Identifier

batch_bp = Blueprint("batches", __name__, url_prefix="/internal/v1/batches")

# The ids /define and the events accept; no other id can have state.
_BATCH_ID = TypeAdapter(Identifier)


class BatchIdConverter(PathConverter):
    """Werkzeug's path converter, but a batch id may also begin with "/": an id takes the rest of
    the path, whose "%2F" the server has already decoded to "/" like any other."""

    regex = ".+"
    part_isolating = False


batch_bp.record_once(lambda state: state.app.url_map.converters.update(batch_path=BatchIdConverter))


# Slashes kept as they are: merged, "a//b" would be redirected to another batch's "a/b".
@batch_bp.get("/<batch_path:batch_id>", merge_slashes=False)
@inject
async def inspect_batch(
    batch_id: str, service: FromDishka[PipelineResolutionServiceProtocol]
) -> Response:
    try:
        batch_id = _BATCH_ID.validate_python(batch_id)
    except ValidationError as exc:
        detail = [{"field": "batch_id", "message": e["msg"]} for e in exc.errors()]
        return error_response(400, "validation_failed", detail)
    report = await service.inspect(batch_id)
    if report is None:
        return error_response(
            404,
            "batch_not_found",
            f"BCS holds no state for batch {batch_id!r}: no event of it was applied, or its "
            "state expired",
        )
    body = BatchInspectionResponse.from_report(*report).model_dump(mode="json")
    return json_response(200, body)
