from typing import Any

import orjson
from quart import Response


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def error_response(
    status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None
) -> Response:
    return json_response(status, {"error": error, "detail": detail}, headers)


def internal_error_response() -> Response:
    # Says nothing of the cause: the log has it, the caller must not.
    return error_response(500, "internal_error", "an unexpected error occurred")
