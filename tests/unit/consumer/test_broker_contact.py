"""The watch that tells the consumer's health when the broker last answered (consumer/
broker_contact.py), on a fake client and fake clocks: fetches first, a metadata probe only when
no fetch answered."""

import asyncio

from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from batch_conductor_service.consumer.broker_contact import BrokerContact
from batch_conductor_service.consumer.health import ConsumerHealth, ConsumerPhase

TP0 = TopicPartition("t", 0)
TP1 = TopicPartition("t", 1)


class FakeClient:
    """assignment(), last_poll_timestamp() and topics() as AIOKafkaConsumer has them."""

    def __init__(self, stamps: dict[TopicPartition, int | None]) -> None:
        self.stamps = stamps
        self.probes = 0
        self.probe_error: Exception | None = None
        self.probe_hangs = False

    def assignment(self) -> set[TopicPartition]:
        return set(self.stamps)

    def last_poll_timestamp(self, partition: TopicPartition) -> int | None:
        assert partition in self.stamps, "Partition is not assigned"
        return self.stamps[partition]

    async def topics(self) -> set[str]:
        self.probes += 1
        if self.probe_hangs:
            await asyncio.Event().wait()  # a frozen broker never answers
        if self.probe_error is not None:
            raise self.probe_error
        return {"t"}


class Clocks:
    """The health's monotonic clock and the wall clock aiokafka stamps fetches with."""

    def __init__(self) -> None:
        self.monotonic = 1000.0
        self.wall = 1_700_000_000.0

    def advance(self, seconds: float) -> None:
        self.monotonic += seconds
        self.wall += seconds


def running(clocks: Clocks, silence_seconds: float = 15.0) -> ConsumerHealth:
    health = ConsumerHealth(
        enabled=True, silence_seconds=silence_seconds, clock=lambda: clocks.monotonic
    )
    health.running(2)
    health.heard_from_broker()
    return health


async def test_a_recent_fetch_is_contact_at_its_own_time_and_needs_no_probe() -> None:
    clocks = Clocks()
    health = running(clocks)
    contact = BrokerContact(health, 15.0, wall_clock=lambda: clocks.wall)
    clocks.advance(20.0)
    # One partition fetched 1 s ago, the other never yet.
    client = FakeClient({TP0: int((clocks.wall - 1.0) * 1000), TP1: None})

    await contact.look(client)

    assert client.probes == 0
    assert health.broker_silence() == 1.0
    assert health.reported_phase() is ConsumerPhase.RUNNING


async def test_without_a_fresh_fetch_a_metadata_answer_is_contact() -> None:
    clocks = Clocks()
    health = running(clocks)
    contact = BrokerContact(health, 15.0, wall_clock=lambda: clocks.wall)
    clocks.advance(20.0)
    # No partition assigned (more replicas than partitions): only a probe can tell.
    client = FakeClient({})

    await contact.look(client)

    assert client.probes == 1
    assert health.broker_silence() == 0.0


async def test_a_fetch_older_than_a_look_apart_is_checked_with_a_probe() -> None:
    clocks = Clocks()
    health = running(clocks)
    contact = BrokerContact(health, 15.0, wall_clock=lambda: clocks.wall)
    clocks.advance(20.0)
    # Records buffered for a slow store: the fetcher does not fetch that partition meanwhile.
    client = FakeClient({TP0: int((clocks.wall - 12.0) * 1000)})

    await contact.look(client)

    assert client.probes == 1
    assert health.broker_silence() == 0.0


async def test_a_refused_probe_leaves_the_silence_growing() -> None:
    clocks = Clocks()
    health = running(clocks)
    contact = BrokerContact(health, 15.0, wall_clock=lambda: clocks.wall)
    client = FakeClient({TP0: int(clocks.wall * 1000)})
    clocks.advance(16.0)
    client.probe_error = KafkaConnectionError("refused")

    await contact.look(client)

    assert client.probes == 1
    assert health.broker_silence() == 16.0
    assert health.reported_phase() is ConsumerPhase.BROKER_UNREACHABLE


async def test_a_probe_that_never_answers_is_given_up_and_the_silence_grows() -> None:
    clocks = Clocks()
    health = running(clocks, silence_seconds=0.03)
    contact = BrokerContact(health, 0.03, wall_clock=lambda: clocks.wall)
    clocks.advance(1.0)
    client = FakeClient({})
    client.probe_hangs = True

    await asyncio.wait_for(contact.look(client), 10.0)

    assert client.probes == 1
    assert health.reported_phase() is ConsumerPhase.BROKER_UNREACHABLE


async def test_the_watch_counts_the_join_as_contact_and_looks_every_third_of_the_limit() -> None:
    clocks = Clocks()
    health = ConsumerHealth(enabled=True, silence_seconds=15.0, clock=lambda: clocks.monotonic)
    health.running(0)
    waits: list[float] = []
    looked = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            looked.set()
            await asyncio.Event().wait()
        clocks.advance(seconds)

    contact = BrokerContact(health, 15.0, wall_clock=lambda: clocks.wall, sleep=sleep)
    client = FakeClient({})
    client.probe_error = KafkaConnectionError("refused")
    watch = asyncio.create_task(contact.watch(client))
    await asyncio.wait_for(looked.wait(), 10.0)
    watch.cancel()

    assert waits == [5.0, 5.0, 5.0]
    # Heard at the join, then two refused probes: ten seconds of silence, still running.
    assert client.probes == 2
    assert health.broker_silence() == 10.0
    assert health.reported_phase() is ConsumerPhase.RUNNING
