"""bcs_events_processed_total counts each message once, by what became of it: a message that is
dead-lettered is dead_lettered, never also parked or applied (the dashboard's "events by
outcome" and the not-progressing alert add these up)."""

from typing import Any

from prometheus_client import CollectorRegistry

from batch_conductor_service.consumer.pipeline import EventPipeline
from batch_conductor_service.domain.batch_state import ApplyResult, BatchChange
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.memory import (
    InMemoryBatchStateRepository,
    InMemoryEssayPlacement,
)
from common_core.topics import Topic
from tests.support.consumed_message import Message
from tests.support.event_factory import encode, ready, spellcheck
from tests.support.recording_dlq import RecordingDlqProducer


class PoisonFor(InMemoryBatchStateRepository):
    """Refuses, as a bug would, every write that holds a change to one batch."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(ttl_seconds=3600)
        self._batch_id = batch_id

    async def apply(self, changes: Any) -> list[ApplyResult]:
        if any(isinstance(c, BatchChange) and c.batch_id == self._batch_id for c in changes):
            raise ValueError("poison")
        return await super().apply(changes)


def pipeline(
    repository: InMemoryBatchStateRepository, max_parked: int = 100
) -> tuple[EventPipeline, CollectorRegistry, RecordingDlqProducer]:
    registry = CollectorRegistry()
    metrics = BcsMetrics(registry)
    placement = InMemoryEssayPlacement(3600, 3600, max_parked, metrics)
    dead_letters = RecordingDlqProducer()
    return (
        EventPipeline(repository, placement, dead_letters, metrics, max_records=100),
        registry,
        dead_letters,
    )


def counted(registry: CollectorRegistry) -> dict[str, float]:
    return {
        sample.labels["outcome"]: sample.value
        for family in registry.collect()
        if family.name == "bcs_events_processed"
        for sample in family.samples
        if sample.name == "bcs_events_processed_total"
    }


async def test_a_result_refused_by_a_full_parking_lot_is_counted_dead_lettered_only() -> None:
    events, registry, dead_letters = pipeline(
        InMemoryBatchStateRepository(ttl_seconds=3600), max_parked=1
    )
    results = [
        Message(Topic.SPELLCHECK_COMPLETED, 0, n, encode(spellcheck(None, f"essay-{n}")))
        for n in range(2)
    ]

    await events.handle(results)

    assert [record.reason for record in dead_letters.sent] == ["unplaceable_event"]
    assert counted(registry) == {"parked": 1, "dead_lettered": 1}


async def test_a_poison_message_is_counted_dead_lettered_only() -> None:
    events, registry, dead_letters = pipeline(PoisonFor("bad"))
    messages = [
        Message(Topic.BATCH_ESSAYS_READY, 0, 0, encode(ready("good", ["a"]))),
        Message(Topic.BATCH_ESSAYS_READY, 0, 1, encode(ready("bad", ["b"]))),
    ]

    await events.handle(messages)

    assert [record.reason for record in dead_letters.sent] == ["processing_failed"]
    assert counted(registry) == {"applied": 1, "dead_lettered": 1}
