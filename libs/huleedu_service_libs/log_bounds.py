"""Keeps what a log line quotes from its input bounded: an id or an error is clipped, so one
hostile message cannot make a line (or a log store's bill) grow with it."""

from typing import overload

# Long enough for a UUID with a prefix, short enough that 20 of them make a modest line.
MAX_LOGGED_ID_CHARS = 80
MAX_LOGGED_TEXT_CHARS = 500


def clip(text: str, limit: int = MAX_LOGGED_TEXT_CHARS) -> str:
    """`text` itself when it fits, else its first `limit` characters and how many there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text)} chars]"


@overload
def clip_id(value: str) -> str: ...
@overload
def clip_id(value: str | None) -> str | None: ...
def clip_id(value: str | None) -> str | None:
    return None if value is None else clip(value, MAX_LOGGED_ID_CHARS)


def clip_error(exc: BaseException, limit: int = MAX_LOGGED_TEXT_CHARS) -> str:
    """An exception as `Type: message`, clipped: messages may quote the input they failed on."""
    return clip(f"{type(exc).__name__}: {exc}", limit)
