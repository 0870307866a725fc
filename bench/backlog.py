"""Events as the platform's producers put them on the wire, and a broker to publish them to.

Each batch gets the three kinds of event a batch's first step produces: the registered roster,
the ready roster, and one spellcheck result per essay. Values are the JSON the contracts
describe (docs/events.md), built from plain dicts so the bench does not depend on how the
service parses them.
"""

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from common_core.topics import Topic

PARTITIONS = 3
TIMESTAMP = "2025-06-21T12:00:00.123456Z"
CONSUMED = (
    Topic.BATCH_ESSAYS_REGISTERED,
    Topic.BATCH_ESSAYS_READY,
    Topic.SPELLCHECK_COMPLETED,
    Topic.CJ_ASSESSMENT_COMPLETED,
    Topic.CJ_ASSESSMENT_FAILED,
    Topic.BATCH_PHASE_OUTCOME,
)


@dataclass(frozen=True, slots=True)
class Event:
    topic: str
    key: bytes
    value: bytes


def _envelope(topic: Topic, data: dict[str, object]) -> bytes:
    return orjson.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": topic.value,
            "event_timestamp": TIMESTAMP,
            "source_service": "bcs_bench",
            "schema_version": 1,
            "correlation_id": str(uuid.uuid4()),
            "data_schema_uri": None,
            "data": data,
        }
    )


def _entity(entity_id: str, entity_type: str, parent_id: str | None) -> dict[str, object]:
    return {"entity_id": entity_id, "entity_type": entity_type, "parent_id": parent_id}


def _metadata(entity: dict[str, object]) -> dict[str, object]:
    return {"entity": entity, "timestamp": TIMESTAMP, "error_info": {}}


def batch_events(batch_id: str, essays: int) -> Iterator[Event]:
    """Registered, ready, then a successful spellcheck result for every essay."""
    essay_ids = [f"{batch_id}-essay-{i}" for i in range(essays)]
    batch_ref = _entity(batch_id, "batch", None)
    key = batch_id.encode()
    yield Event(
        Topic.BATCH_ESSAYS_REGISTERED.value,
        key,
        _envelope(
            Topic.BATCH_ESSAYS_REGISTERED,
            {
                "event": "batch.essays.registered",
                "batch_id": batch_id,
                "expected_essay_count": essays,
                "essay_ids": essay_ids,
                "metadata": _metadata(batch_ref),
            },
        ),
    )
    yield Event(
        Topic.BATCH_ESSAYS_READY.value,
        key,
        _envelope(
            Topic.BATCH_ESSAYS_READY,
            {
                "event": "batch.essays.ready",
                "batch_id": batch_id,
                "ready_essays": [{"essay_id": e, "text_storage_id": f"s-{e}"} for e in essay_ids],
                "batch_entity": batch_ref,
                "metadata": _metadata(batch_ref),
                "validation_failures": None,
                "total_files_processed": essays,
            },
        ),
    )
    for essay_id in essay_ids:
        essay_ref = _entity(essay_id, "essay", batch_id)
        yield Event(
            Topic.SPELLCHECK_COMPLETED.value,
            essay_id.encode(),
            _envelope(
                Topic.SPELLCHECK_COMPLETED,
                {
                    "event_name": "essay.spellcheck.completed",
                    "entity_ref": essay_ref,
                    "timestamp": TIMESTAMP,
                    "status": "spellchecked_success",
                    "system_metadata": _metadata(essay_ref),
                    "original_text_storage_id": f"orig-{essay_id}",
                    "storage_metadata": None,
                    "corrections_made": 3,
                },
            ),
        )


async def create_topics(bootstrap: str, partitions: int = PARTITIONS) -> None:
    """Every consumed topic with `partitions` partitions, before anything is produced to it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(t.value, num_partitions=partitions, replication_factor=1) for t in CONSUMED]
        )
    finally:
        await admin.close()


async def publish(bootstrap: str, events: Iterator[Event], window: int = 2000) -> int:
    """Sends without waiting for each acknowledgement, `window` in flight; returns the count."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    sent = 0
    try:
        pending: list[asyncio.Future[object]] = []
        for event in events:
            pending.append(await producer.send(event.topic, event.value, key=event.key))
            sent += 1
            if len(pending) >= window:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent
