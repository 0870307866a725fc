"""The request's correlation id, decided once per request and only here.

A usable `correlation_id` from the body wins (BOS sends it there), else the `X-Correlation-ID`
header, else a new UUID. The first call of `adopt_correlation_id` in a request decides, binds
it to every later log line and keeps it for the response header; a route that reads a body
calls it with the body's value, anything else (the response hook, an error handler) with none.
"""

from quart import g, request

from huleedu_service_libs.correlation import new_correlation_id, usable_correlation_id
from huleedu_service_libs.logging_utils import bind_log_context, get_logger

CORRELATION_HEADER = "X-Correlation-ID"
logger = get_logger(__name__)


def adopt_correlation_id(from_body: object = None) -> str:
    adopted: str | None = g.get("correlation_id")
    if adopted is not None:
        return adopted
    chosen = usable_correlation_id(from_body)
    if chosen is None and from_body is not None:
        logger.warning("correlation_id_not_adopted", supplied=repr(from_body)[:100])
    if chosen is None:
        # getlist, not get: werkzeug's get raises and catches an HTTP exception for a missing
        # header, which cost more than the rest of this function on every request without one.
        supplied = request.headers.getlist(CORRELATION_HEADER)
        chosen = usable_correlation_id(supplied[0]) if supplied else None
    adopted = chosen or new_correlation_id()
    g.correlation_id = adopted
    bind_log_context(correlation_id=adopted)
    return adopted
