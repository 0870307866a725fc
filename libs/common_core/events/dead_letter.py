"""What a service sends to `<topic>.DLQ` (docs/events.md): enough to replay by hand."""

import base64
import binascii
from enum import StrEnum
from typing import Literal

from common_core.events.building_blocks import ContractModel, UtcDatetime


class DeadLetterReason(StrEnum):
    INVALID_JSON = "invalid_json"
    SCHEMA_VALIDATION_FAILED = "schema_validation_failed"
    UNPLACEABLE_EVENT = "unplaceable_event"
    RESOLUTION_FAILED = "resolution_failed"
    # Stamped further in the future than the service's clock-skew allowance: a later outcome
    # wins, so such an event would outrank every real one that follows.
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    # Valid to read, but storing it failed (not an outage) on every one of a bounded number of
    # tries, or handling it raised an error nobody foresaw: poison.
    PROCESSING_FAILED = "processing_failed"


class DeadLetterRecord(ContractModel):
    original_payload: str
    # Bytes that are not UTF-8 cannot travel as JSON text; they go as base64 instead.
    original_payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    original_topic: str
    original_partition: int | None = None
    original_offset: int | None = None
    reason: DeadLetterReason | str
    error: str
    failing_service: str
    failed_at: UtcDatetime
    correlation_id: str | None = None
    # When the payload did not fit the record's size limit, `original_payload` holds a prefix;
    # these describe the whole payload, so a replay can tell it has (or has not) the original.
    original_payload_truncated: bool = False
    original_payload_length: int | None = None
    original_payload_sha256: str | None = None
    # The W3C trace context (`traceparent`, `tracestate`) of the failed message's processing,
    # so that its replay continues the same trace.
    trace_context: dict[str, str] | None = None

    @staticmethod
    def encode_payload(raw: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii"), "base64"

    def payload_bytes(self) -> bytes:
        if self.original_payload_encoding == "base64":
            try:
                return base64.b64decode(self.original_payload, validate=True)
            except binascii.Error as exc:
                raise ValueError("original_payload is not valid base64") from exc
        return self.original_payload.encode("utf-8")
