"""The one line every request leaves at INFO, written once its response is ready, refusals
included: method, route, status, duration and (bound to the line's context) correlation id.
A route adds what it learned (`note`), so a request's story is one line, not several."""

from typing import Any

from quart import Response, g, request

from huleedu_service_libs.http_metrics import UNMATCHED_ENDPOINT
from huleedu_service_libs.log_bounds import clip
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger("batch_conductor_service.requests")

# Long enough for any method a client means; a client may send any token.
_MAX_METHOD_CHARS = 20


def note(**fields: Any) -> None:
    """Adds fields to this request's line."""
    noted: dict[str, Any] | None = g.get("request_log_fields")
    if noted is None:
        g.request_log_fields = fields
    else:
        noted.update(fields)


def noted() -> dict[str, Any]:
    """What the route added to this request's line so far."""
    fields: dict[str, Any] = g.get("request_log_fields") or {}
    return fields


def log_request(response: Response, seconds: float | None) -> None:
    rule = request.url_rule
    route = rule.rule if rule is not None else UNMATCHED_ENDPOINT
    extra = noted()
    if rule is None:
        extra = {**extra, "path": clip(request.path, 300)}
    logger.info(
        "http_request",
        method=clip(request.method, _MAX_METHOD_CHARS),
        route=route,
        status=response.status_code,
        duration_ms=None if seconds is None else round(seconds * 1000, 3),
        **extra,
    )
