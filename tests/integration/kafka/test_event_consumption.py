"""The real app and consumer against a real Kafka-protocol broker (Tansu)."""

import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry
from quart.typing import TestClientProtocol as HttpClient

from batch_conductor_service.domain.batch_state import ApplyResult, BatchChange
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.stores.memory import (
    InMemoryBatchStateRepository,
)
from common_core.topics import Topic, dlq_topic
from tests.integration.kafka.kafka_support import (
    Publisher,
    build_app,
    eventually,
    kafka_settings,
    read_topic,
)
from tests.support import event_factory as ev

ESSAYS = ["e1", "e2", "e3"]


def _batch() -> str:
    return f"batch-{uuid.uuid4()}"


async def _define(client: HttpClient, batch_id: str, pipeline: str) -> list[str]:
    response = await client.post(
        "/internal/v1/pipelines/define",
        json={"batch_id": batch_id, "requested_pipeline": pipeline},
    )
    assert response.status_code == 200
    body: dict[str, Any] = await response.get_json()
    return list(body["final_pipeline"])


async def _health(client: HttpClient) -> dict[str, Any]:
    response = await client.get("/healthz")
    body: dict[str, Any] = await response.get_json()
    return body


async def _dead_letters(bootstrap: str, topic: str, marker: str) -> list[dict[str, Any]]:
    records = [orjson.loads(v) for v in await read_topic(bootstrap, dlq_topic(topic))]
    return [r for r in records if marker in r["original_payload"]]


async def test_events_published_before_start_prune_every_pipeline_as_the_rules_say(
    kafka_bootstrap: str, producer: Publisher
) -> None:
    batch = _batch()
    one_short = _batch()
    before_start = [
        ev.registered(batch, [*ESSAYS, "e4"]),
        ev.ready(batch, ESSAYS),
        *(ev.spellcheck(batch, essay) for essay in ESSAYS[:-1]),
        ev.ready(one_short, ESSAYS),
        ev.spellcheck(one_short, "e1"),
    ]
    for document in before_start:
        await producer.event(document["event_type"], document)

    repository = RecordingRepository()
    app = build_app(kafka_settings(kafka_bootstrap), repository)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        # An unknown batch gets the same answer as a half-done one, so wait for the events
        # themselves to be applied before asking.
        ids = [document["event_id"] for document in before_start]
        await eventually(
            lambda: _async(repository.results_for(ids)),
            lambda counts: counts[ApplyResult.APPLIED] == len(ids),
        )
        # Two of three ready essays: spellcheck is not complete yet.
        assert await _define(client, batch, "cj_assessment") == ["spellcheck", "cj_assessment"]
        await producer.event(
            Topic.SPELLCHECK_COMPLETED, ev.spellcheck(batch, ESSAYS[-1], "spellcheck_failed")
        )
        # Every essay of the ready roster is terminal, with successes: spellcheck is pruned.
        assert await eventually(
            lambda: _define(client, batch, "cj_assessment"), lambda s: s == ["cj_assessment"]
        ) == ["cj_assessment"]
        assert await _define(client, batch, "nlp") == ["nlp"]
        assert await _define(client, batch, "ai_feedback") == ["nlp", "ai_feedback"]
        assert await _define(client, one_short, "nlp") == ["spellcheck", "nlp"]

        await producer.event(Topic.CJ_ASSESSMENT_FAILED, ev.cj_failed(batch))
        await producer.event(
            Topic.BATCH_PHASE_OUTCOME,
            ev.phase_outcome(batch, "nlp", "COMPLETED_WITH_FAILURES", ESSAYS[:2], ["e3"]),
        )
        assert await eventually(
            lambda: _define(client, batch, "comprehensive"),
            lambda s: s == ["cj_assessment", "ai_feedback"],
        )
        await producer.event(
            Topic.CJ_ASSESSMENT_COMPLETED,
            ev.cj_completed(batch, ESSAYS, timestamp="2025-06-21T13:00:00Z"),
        )
        assert await eventually(
            lambda: _define(client, batch, "comprehensive"), lambda s: s == ["ai_feedback"]
        )
        await producer.event(
            Topic.BATCH_PHASE_OUTCOME,
            ev.phase_outcome(batch, "ai_feedback", "completed_successfully", ESSAYS),
        )
        final = await eventually(lambda: _define(client, batch, "comprehensive"), lambda s: not s)
        assert final == []
        health = await _health(client)
        assert health["checks"]["kafka_consumer"]["status"] == "ok"


async def test_an_event_delivered_twice_changes_nothing_the_second_time(
    kafka_bootstrap: str, producer: Publisher
) -> None:
    batch = _batch()
    registry = CollectorRegistry()
    repository = RecordingRepository()
    app = build_app(kafka_settings(kafka_bootstrap), repository, registry)
    ready = ev.ready(batch, ["e1"])
    result = ev.spellcheck(batch, "e1")
    async with app.test_app() as test_app:
        client = test_app.test_client()
        for document in (ready, result, ready, result):
            await producer.event(document["event_type"], document)
        await eventually(
            lambda: _async(repository.results_for([ready["event_id"], result["event_id"]])),
            lambda counts: sum(counts.values()) == 4,
        )
        assert await _define(client, batch, "cj_assessment") == ["cj_assessment"]
    counts = repository.results_for([ready["event_id"], result["event_id"]])
    assert counts == {ApplyResult.APPLIED: 2, ApplyResult.DUPLICATE: 2}
    duplicates = registry.get_sample_value(
        "bcs_events_processed_total",
        {"event_type": Topic.SPELLCHECK_COMPLETED.value, "outcome": "duplicate"},
    )
    assert duplicates is not None
    assert duplicates >= 1


async def test_unprocessable_messages_are_dead_lettered_and_the_partition_moves_on(
    kafka_bootstrap: str, producer: Publisher
) -> None:
    batch = _batch()
    topic = Topic.SPELLCHECK_COMPLETED
    await producer.event(Topic.BATCH_ESSAYS_READY, ev.ready(batch, ["e1"]))
    await producer.raw(topic, f'{{"not json": "{batch}'.encode())
    wrong_shape = ev.spellcheck(batch, "e1")
    del wrong_shape["data"]["status"]
    await producer.event(topic, wrong_shape)
    # Names no batch and no roster names its essay: parked, not dead-lettered.
    unplaced = ev.spellcheck(None, f"never-rostered-{batch}", correlation_id=f"corr-{batch}")
    await producer.event(topic, unplaced)
    await producer.event(topic, ev.spellcheck(batch, "e1"))

    app = build_app(kafka_settings(kafka_bootstrap))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        assert await eventually(
            lambda: _define(client, batch, "cj_assessment"), lambda s: s == ["cj_assessment"]
        )
        records = await eventually(
            lambda: _dead_letters(kafka_bootstrap, topic, batch), lambda r: len(r) >= 2
        )
    by_reason = {r["reason"]: r for r in records}
    assert sorted(r["reason"] for r in records) == ["invalid_json", "schema_validation_failed"]
    for record in records:
        assert record["original_topic"] == topic.value
        assert record["original_partition"] == 0
        assert isinstance(record["original_offset"], int)
        assert record["failing_service"] == "batch_conductor_service"
        assert record["error"]
        assert record["failed_at"]
    assert by_reason["invalid_json"]["original_payload"] == f'{{"not json": "{batch}'
    assert "status" in by_reason["schema_validation_failed"]["error"]


class RecordingRepository(InMemoryBatchStateRepository):
    """The in-memory repository that remembers each result and can be made to fail."""

    def __init__(self) -> None:
        super().__init__(ttl_seconds=3600)
        self.failing = False
        self.failed_calls = 0
        self.results: list[tuple[str, ApplyResult]] = []

    async def apply(self, changes: Sequence[BatchChange]) -> list[ApplyResult]:
        if self.failing:
            self.failed_calls += 1
            raise StateStoreUnavailableError("memory", "switched off by the test", 0.1)
        results = await super().apply(changes)
        self.results.extend(
            (c.event_id, r) for c, r in zip(changes, results, strict=True) if c.event_id
        )
        return results

    def results_for(self, event_ids: list[str]) -> Counter[ApplyResult]:
        return Counter(result for event_id, result in self.results if event_id in event_ids)


async def _async(value: Any) -> Any:
    return value


async def _committed(bootstrap: str, group_id: str) -> dict[int, int | None]:
    """The group's committed offsets on the ready and spellcheck partitions 0, without joining."""
    partitions = [
        TopicPartition(t, 0) for t in (Topic.BATCH_ESSAYS_READY, Topic.SPELLCHECK_COMPLETED)
    ]
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id)
    await reader.start()
    try:
        reader.assign(partitions)
        return {i: await reader.committed(tp) for i, tp in enumerate(partitions)}
    finally:
        await reader.stop()


async def test_a_failing_store_means_no_commit_no_dead_letter_then_full_catch_up(
    kafka_bootstrap: str, producer: Publisher
) -> None:
    batch = _batch()
    settings = kafka_settings(kafka_bootstrap)
    repository = RecordingRepository()
    app = build_app(settings, repository)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        marker = ev.ready(_batch(), ["x"])
        await producer.event(Topic.BATCH_ESSAYS_READY, marker)
        await eventually(
            lambda: _async(repository.results_for([marker["event_id"]])),
            lambda c: c[ApplyResult.APPLIED] == 1,
        )
        before = await eventually(
            lambda: _committed(kafka_bootstrap, settings.KAFKA_CONSUMER_GROUP_ID),
            lambda c: c[0] is not None,
        )

        repository.failing = True
        events = [ev.ready(batch, ESSAYS)] + [ev.spellcheck(batch, e) for e in ESSAYS]
        for document in events:
            await producer.event(document["event_type"], document)
        await producer.raw(Topic.SPELLCHECK_COMPLETED, f"not json {batch}".encode())
        await eventually(lambda: _async(repository.failed_calls), lambda n: n >= 3)
        health = await _health(client)
        assert health["status"] == "degraded"
        assert health["checks"]["kafka_consumer"]["state"] == "retrying"
        assert await _committed(kafka_bootstrap, settings.KAFKA_CONSUMER_GROUP_ID) == before
        assert await _dead_letters(kafka_bootstrap, Topic.SPELLCHECK_COMPLETED, batch) == []

        repository.failing = False
        assert await eventually(
            lambda: _define(client, batch, "cj_assessment"), lambda s: s == ["cj_assessment"]
        )
        await eventually(
            lambda: _dead_letters(kafka_bootstrap, Topic.SPELLCHECK_COMPLETED, batch),
            lambda r: len(r) == 1,
        )
        await eventually(
            lambda: _health(client), lambda h: h["checks"]["kafka_consumer"]["status"] == "ok"
        )
    counts = repository.results_for([d["event_id"] for d in events])
    assert counts == {ApplyResult.APPLIED: len(events)}


async def test_stopping_and_restarting_mid_stream_loses_and_repeats_nothing(
    kafka_bootstrap: str, producer: Publisher
) -> None:
    batch = _batch()
    essays = [f"e{i}" for i in range(40)]
    settings = kafka_settings(kafka_bootstrap)
    repository = RecordingRepository()
    events = [ev.ready(batch, essays)] + [ev.spellcheck(batch, e) for e in essays]
    ids = [d["event_id"] for d in events]
    async with build_app(settings, repository).test_app():
        for document in events[:20]:
            await producer.event(document["event_type"], document)
        await eventually(
            lambda: _async(repository.results_for(ids)), lambda c: sum(c.values()) >= 5
        )
        for document in events[20:30]:
            await producer.event(document["event_type"], document)
    stopped_at = sum(repository.results_for(ids).values())
    for document in events[30:]:
        await producer.event(document["event_type"], document)
    # Same group, same store: the second run resumes from the committed offsets.
    async with build_app(settings, repository).test_app() as test_app:
        client = test_app.test_client()
        assert await eventually(
            lambda: _define(client, batch, "nlp"), lambda s: s == ["nlp"], within_seconds=60
        )
        await eventually(
            lambda: _async(repository.results_for(ids)), lambda c: sum(c.values()) >= len(ids)
        )
    assert stopped_at < len(ids)
    assert repository.results_for(ids) == {ApplyResult.APPLIED: len(ids)}
    facts = await repository.facts(batch)
    assert facts is not None
    assert facts.succeeded["spellcheck"] == set(essays)


async def test_http_serves_and_health_is_degraded_while_kafka_is_unreachable() -> None:
    settings = kafka_settings("127.0.0.1:1", KAFKA_RETRY_BACKOFF_MAX_SECONDS=0.2)
    async with build_app(settings).test_app() as test_app:
        client = test_app.test_client()
        assert await _define(client, _batch(), "nlp") == ["spellcheck", "nlp"]
        health = await eventually(
            lambda: _health(client),
            lambda h: h["checks"]["kafka_consumer"].get("consecutive_failures", 0) >= 2,
        )
        assert health["status"] == "degraded"
        assert health["checks"]["kafka_consumer"]["state"] == "connecting"
