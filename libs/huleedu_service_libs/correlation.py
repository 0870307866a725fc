"""Which client-supplied correlation ids a service may adopt."""

MAX_CORRELATION_ID_LENGTH = 255


def usable_correlation_id(value: object) -> str | None:
    """The id stripped, if it can travel in a response header and a log line; else None.

    Printable ASCII only: anything else would make the `X-Correlation-ID` response header
    invalid and turn a good answer into an error.
    """
    if not isinstance(value, str):
        return None
    candidate = value.strip()
    if not 0 < len(candidate) <= MAX_CORRELATION_ID_LENGTH:
        return None
    if not all(" " <= char <= "~" for char in candidate):
        return None
    return candidate
