"""BCS's own internal API key on every /internal/ route, when BCS_INTERNAL_API_KEY is set.

The platform's services send one another `X-Internal-API-Key` and `X-Service-ID` (who calls),
but the platform's BOS sends BCS no key: the platform-wide HULEEDU_INTERNAL_API_KEY is not read,
or every real /define would be refused. A missing or wrong key gets 401 with a JSON body and is
counted; the caller's service id goes into the log line either way. /healthz, /livez,
/readyz, /metrics and /openapi.json stay open: probes and scrapers hold no key. Unset, nothing
is required, and the write endpoint /internal/v1/phases/complete is then open to anything
that reaches the port.
"""

import hmac

from quart import Quart, Response, request

from batch_conductor_service.api.responses import error_response
from batch_conductor_service.metrics import BcsMetrics
from huleedu_service_libs.log_bounds import clip, clip_id
from huleedu_service_libs.logging_utils import bind_log_context, get_logger

KEY_HEADER = "X-Internal-API-Key"
SERVICE_HEADER = "X-Service-ID"
GUARDED_PREFIX = "/internal/"

logger = get_logger(__name__)


def require_internal_api_key(app: Quart, key: str, metrics: BcsMetrics) -> None:
    expected = key.encode("utf-8")

    @app.before_request
    async def _check_key() -> Response | None:
        if not request.path.startswith(GUARDED_PREFIX):
            return None
        service_id = clip_id(request.headers.get(SERVICE_HEADER)) or "unknown"
        bind_log_context(caller_service=service_id)
        supplied = request.headers.get(KEY_HEADER)
        if supplied is None:
            reason = "missing"
        elif hmac.compare_digest(_header_bytes(supplied), expected):
            return None
        else:
            reason = "invalid"
        metrics.internal_auth_failures.labels(reason).inc()
        logger.warning(
            "internal_api_key_refused",
            reason=reason,
            caller_service=service_id,
            path=clip(request.path, 300),
        )
        return error_response(
            401, "unauthorized", f"{reason} {KEY_HEADER}: this route needs the internal API key"
        )


def _header_bytes(value: str) -> bytes:
    """The header's bytes as the client sent them: the server decoded them as Latin-1, so a
    client sending the key in UTF-8 compares equal to the key's UTF-8 bytes."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:  # not decoded from bytes at all; it cannot be the key
        return b""
