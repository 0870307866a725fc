"""The consumer's pipeline over any repository and parking lot, with a recording dead-letter
topic and its own metrics, fed messages without a broker; and the in-memory set-up the unit
tests use."""

import itertools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from batch_conductor_service.consumer.pipeline import EventPipeline
from batch_conductor_service.domain.batch_state import BatchCounts, StepCounts
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import (
    BatchStateRepositoryProtocol,
    EssayPlacementProtocol,
)
from batch_conductor_service.stores.memory import (
    InMemoryBatchStateRepository,
    InMemoryEssayPlacement,
)
from tests.support.consumed_message import Message, msg
from tests.support.recording_dlq import RecordingDlqProducer

TTL_SECONDS = 3600


class PipelineHarness:
    def __init__(
        self,
        repository: BatchStateRepositoryProtocol,
        placement: EssayPlacementProtocol,
        metrics: BcsMetrics,
        registry: CollectorRegistry,
        *,
        dead_letters: RecordingDlqProducer | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_attempts: int = 3,
        tracer: Tracer | None = None,
    ) -> None:
        self.repository = repository
        self.placement = placement
        self.metrics = metrics
        self.registry = registry
        self.dead_letters = dead_letters or RecordingDlqProducer()
        self.pipeline = EventPipeline(
            repository,
            placement,
            self.dead_letters,
            metrics,
            max_records=500,
            max_attempts=max_attempts,
            clock=clock,
            tracer=tracer,
        )
        self._offsets = itertools.count()

    async def handle(self, messages: Sequence[Message]) -> None:
        await self.pipeline.handle(messages)

    async def fetch(self, *events: tuple[str, dict[str, Any]]) -> list[Message]:
        """One fetch of these (topic, document) events, each at the next offset of partition 0."""
        messages = [msg(topic, next(self._offsets), document) for topic, document in events]
        await self.handle(messages)
        return messages

    async def counts(self, batch_id: str) -> BatchCounts:
        return await self.repository.counts(batch_id)

    async def step(self, batch_id: str, step: str) -> StepCounts:
        return (await self.counts(batch_id)).counts_for(step)

    def processed(self, topic: str, outcome: str) -> float:
        return self._sample("bcs_events_processed_total", event_type=topic, outcome=outcome)

    def dead_lettered(self, topic: str, reason: str) -> float:
        return self._sample("bcs_dlq_records_total", topic=topic, reason=reason)

    def unplaced(self, outcome: str) -> float:
        return self._sample("bcs_unplaced_results_total", outcome=outcome)

    def errors(self, kind: str) -> float:
        return self._sample("bcs_consumer_errors_total", kind=kind)

    def sample(self, name: str) -> float | None:
        return self.registry.get_sample_value(name)

    def _sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


class ManualClock:
    """Seconds for the stores' expiry, moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def memory_harness(
    *,
    repository: InMemoryBatchStateRepository | None = None,
    max_parked: int = 10_000,
    parked_ttl_seconds: float = TTL_SECONDS,
    store_clock: Callable[[], float] | None = None,
    **options: Any,
) -> PipelineHarness:
    """The pipeline over the in-memory stores (store_clock: their expiry's clock)."""
    registry = CollectorRegistry()
    metrics = BcsMetrics(registry)
    clock_options = {} if store_clock is None else {"clock": store_clock}
    placement = InMemoryEssayPlacement(
        TTL_SECONDS, parked_ttl_seconds, max_parked, metrics, **clock_options
    )
    return PipelineHarness(
        repository or InMemoryBatchStateRepository(TTL_SECONDS, **clock_options),
        placement,
        metrics,
        registry,
        **options,
    )
