"""A dead-letter record that always fits the broker, whatever the message held.

JSON escaping can make a record far larger than the message it carries (a control byte becomes
six characters), and a record the broker refuses would make the consumer retry forever. The
record's text fields are clipped and the payload is cut to the prefix that fits `max_bytes`;
the record then says so, with the whole payload's length and SHA-256 digest.
"""

import hashlib
from datetime import datetime

import orjson

from common_core.events import DeadLetterRecord
from huleedu_service_libs.log_bounds import clip
from huleedu_service_libs.trace_context import NO_TRACE, TraceCarrier

# Room for the record's own fields when the payload is cut (topic, reason, timestamps...).
_MAX_ERROR_CHARS = 2000
_MAX_NAME_CHARS = 255


def bounded_record(
    *,
    original_topic: str,
    payload: bytes,
    reason: str,
    error: str,
    failing_service: str,
    failed_at: datetime,
    partition: int | None,
    offset: int | None,
    correlation_id: str | None,
    max_bytes: int,
    trace_context: TraceCarrier = NO_TRACE,
) -> bytes:
    """The record as JSON bytes, at most `max_bytes` long (which must leave room for the
    record's fields, a few KiB)."""
    text, encoding = DeadLetterRecord.encode_payload(payload)
    record = DeadLetterRecord(
        original_payload="",
        original_payload_encoding=encoding,
        original_topic=clip(original_topic, _MAX_NAME_CHARS),
        original_partition=partition,
        original_offset=offset,
        reason=clip(reason, _MAX_NAME_CHARS),
        error=clip(error, _MAX_ERROR_CHARS),
        failing_service=failing_service,
        failed_at=failed_at,
        correlation_id=None if correlation_id is None else clip(correlation_id, _MAX_NAME_CHARS),
        original_payload_length=len(payload),
        original_payload_sha256=hashlib.sha256(payload).hexdigest(),
        # Bounded by the carrier's own limits (huleedu_service_libs.trace_context).
        trace_context=dict(trace_context) or None,
    )
    whole = _dump(record.model_copy(update={"original_payload": text}))
    if len(whole) <= max_bytes:
        return whole
    # The fields besides the payload, with the truncation flag set, and the quotes of an
    # empty payload string, are the overhead; the payload's JSON spelling gets the rest.
    truncated = record.model_copy(update={"original_payload_truncated": True})
    budget = max_bytes - len(_dump(truncated))
    prefix = _longest_prefix(text, budget)
    if encoding == "base64":
        # Whole quanta only, so that the prefix still decodes.
        prefix = prefix[: len(prefix) // 4 * 4]
    return _dump(truncated.model_copy(update={"original_payload": prefix}))


def _dump(record: DeadLetterRecord) -> bytes:
    return orjson.dumps(record.model_dump(mode="json"))


def _longest_prefix(text: str, budget: int) -> str:
    """The longest prefix of `text` whose JSON string spelling grows the record by at most
    `budget` bytes (the empty string's quotes are already counted)."""
    low, high = 0, min(len(text), max(budget, 0))
    while low < high:
        middle = (low + high + 1) // 2
        if len(orjson.dumps(text[:middle])) - 2 <= budget:
            low = middle
        else:
            high = middle - 1
    return text[:low]
