"""Which client-supplied correlation ids a service may adopt, and new ones."""

import random

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


_VERSION_MASK = ~(0xF000 << 64) & ~(0xC000 << 48)
_VERSION_4_BITS = (0x4000 << 64) | (0x8000 << 48)


def new_correlation_id() -> str:
    """A random UUID (version 4) as text, for a request that brought no usable id.

    From `random`, not `os.urandom` as `uuid.uuid4()` is: an id names a request in logs and is
    no secret, and a system call per request is not worth spending on it. (`random` reseeds in a
    forked child, so workers do not repeat each other.)"""
    value = random.getrandbits(128) & _VERSION_MASK | _VERSION_4_BITS
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
