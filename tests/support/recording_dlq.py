"""A DlqProducerProtocol that keeps what it is sent, and can be made to fail."""

from collections.abc import Sequence
from dataclasses import dataclass, field

from batch_conductor_service.errors import DeadLetterUnavailableError
from huleedu_service_libs.trace_context import NO_TRACE, TraceCarrier


@dataclass(frozen=True, slots=True)
class SentDeadLetter:
    original_topic: str
    payload: bytes
    reason: str
    error: str
    partition: int | None
    offset: int | None
    correlation_id: str | None
    trace_context: TraceCarrier = field(default_factory=lambda: NO_TRACE)


class RecordingDlqProducer:
    def __init__(self, *, failing: bool = False) -> None:
        self.failing = failing
        self.sent: list[SentDeadLetter] = []

    async def send(
        self,
        *,
        original_topic: str,
        payload: bytes,
        reason: str,
        error: str,
        partition: int | None = None,
        offset: int | None = None,
        correlation_id: str | None = None,
        headers: Sequence[tuple[str, bytes | None]] | None = None,
        trace_context: TraceCarrier = NO_TRACE,
    ) -> bool:
        if self.failing:
            raise DeadLetterUnavailableError("switched off by the test")
        self.sent.append(
            SentDeadLetter(
                original_topic,
                payload,
                reason,
                error,
                partition,
                offset,
                correlation_id,
                trace_context,
            )
        )
        return True
