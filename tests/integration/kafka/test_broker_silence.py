"""A broker that stops answering under a running consumer is seen, and nothing is lost.

aiokafka's fetcher swallows connection errors and time-outs, so the consumer loop itself never
fails: `getmany` just returns nothing. The broker here (its own, not the session's: it is
paused) is frozen with SIGSTOP, as a hung or partitioned broker looks to its clients: the
connections stay open and nothing answers. (Terminating it would lose its in-memory topics.)
"""

import os
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry
from quart.typing import TestClientProtocol as HttpClient

from batch_conductor_service.dev.embedded_broker import EmbeddedBroker
from batch_conductor_service.domain.batch_state import ApplyResult
from tests.conftest import service_missing
from tests.integration.kafka.kafka_support import Publisher, build_app, eventually, kafka_settings
from tests.integration.kafka.test_event_consumption import RecordingRepository, _async
from tests.support import event_factory as ev

SILENCE_SECONDS = 1.5
# Longer than the session (6 s): the group forgets the member meanwhile, as in a real outage.
STALL_SECONDS = 8.0


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    try:
        broker = EmbeddedBroker.start(preferred_port=0)
    except (ImportError, RuntimeError, OSError) as exc:
        service_missing(f"the Tansu broker ({exc})")
    try:
        yield broker
    finally:
        # A stopped process keeps SIGTERM pending until it runs again.
        os.kill(broker.process.pid, signal.SIGCONT)
        broker.stop()


async def _health(client: HttpClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/healthz")
    body: dict[str, Any] = await response.get_json()
    return response.status_code, body


def _consumer_state(registry: CollectorRegistry) -> str:
    states = [
        s.labels["state"]
        for metric in registry.collect()
        if metric.name == "bcs_consumer_state"
        for s in metric.samples
        if s.value == 1.0
    ]
    assert len(states) == 1, states
    return states[0]


async def test_a_frozen_broker_turns_health_degraded_then_unhealthy_and_back_losing_nothing(
    own_broker: EmbeddedBroker,
) -> None:
    bootstrap = own_broker.bootstrap_servers
    batch = f"batch-{uuid.uuid4()}"
    essays = [f"e{i}" for i in range(12)]
    before = [ev.ready(batch, essays)] + [ev.spellcheck(batch, e) for e in essays[:4]]
    # Published just before the freeze: maybe fetched, maybe not, never committed unstored.
    at_freeze = [ev.spellcheck(batch, e) for e in essays[4:8]]
    after = [ev.spellcheck(batch, e) for e in essays[8:]]
    ids = [d["event_id"] for d in (*before, *at_freeze, *after)]
    settings = kafka_settings(
        bootstrap, KAFKA_SILENCE_SECONDS=SILENCE_SECONDS, CONSUMER_STALL_SECONDS=STALL_SECONDS
    )
    registry = CollectorRegistry()
    repository = RecordingRepository()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    publisher = Publisher(producer)
    try:
        async with build_app(settings, repository, registry).test_app() as test_app:
            client = test_app.test_client()
            for document in before:
                await publisher.event(document["event_type"], document)
            await eventually(
                lambda: _async(repository.results_for(ids)),
                lambda c: c[ApplyResult.APPLIED] == len(before),
            )
            await eventually(lambda: _health(client), lambda h: h[1]["status"] == "ok")
            for document in at_freeze:
                await publisher.event(document["event_type"], document)

            own_broker.process.send_signal(signal.SIGSTOP)
            status, body = await eventually(
                lambda: _health(client),
                lambda h: h[1]["checks"]["kafka_consumer"]["state"] == "broker_unreachable",
            )
            consumer = body["checks"]["kafka_consumer"]
            assert (status, body["status"], consumer["status"]) == (200, "degraded", "degraded")
            assert consumer["broker_silent_seconds"] >= SILENCE_SECONDS
            assert _consumer_state(registry) == "broker_unreachable"
            # Past the stall limit, the existing stall rule makes it unhealthy (503).
            status, body = await eventually(lambda: _health(client), lambda h: h[0] == 503)
            assert body["checks"]["kafka_consumer"]["state"] == "broker_unreachable"
            assert body["checks"]["kafka_consumer"]["stalled_seconds"] >= STALL_SECONDS
            assert body["checks"]["kafka_consumer"]["stall_limit_seconds"] == STALL_SECONDS
            stalled = registry.get_sample_value("bcs_consumer_stalled_seconds")
            assert stalled is not None
            assert stalled > STALL_SECONDS

            own_broker.process.send_signal(signal.SIGCONT)
            for document in after:
                await publisher.event(document["event_type"], document)
            await eventually(
                lambda: _async(repository.results_for(ids)),
                lambda c: c[ApplyResult.APPLIED] == len(ids),
                within_seconds=60,
            )
            status, body = await eventually(
                lambda: _health(client),
                lambda h: h[1]["status"] == "ok",
                within_seconds=60,
            )
            assert status == 200
            assert body["checks"]["kafka_consumer"]["state"] == "running"
            assert _consumer_state(registry) == "running"
            assert registry.get_sample_value("bcs_consumer_stalled_seconds") == 0.0
    finally:
        os.kill(own_broker.process.pid, signal.SIGCONT)
        await producer.stop()
    # Each event applied once: none lost, and a redelivery (if any) found a duplicate.
    assert repository.results_for(ids)[ApplyResult.APPLIED] == len(ids)
    facts = await repository.facts(batch)
    assert facts is not None
    assert facts.succeeded["spellcheck"] == set(essays)
