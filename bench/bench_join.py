"""How long the bundled broker holds a new consumer group's first join, by session timeout.

A bare aiokafka consumer (no service) joins a new group and reads one message, once per
session timeout, on the broker the other benches use. This is the floor under "from process
start" in bench_ingest: no consumer of a group can read before its join is answered. The
service's own timeout (BCS_KAFKA_SESSION_TIMEOUT_SECONDS, 6 s by default) is Kafka's lowest by
default (group.min.session.timeout.ms); Kafka itself holds a new group's first join for
group.initial.rebalance.delay.ms, 3 s by default.

    .venv/bin/python bench/bench_join.py
"""

import asyncio
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from batch_conductor_service.dev.embedded_broker import EmbeddedBroker

SESSION_TIMEOUTS_MS = (1_000, 2_000, 3_000, 6_000, 10_000)
TOPIC = "bench.join"


async def first_read_after(bootstrap: str, session_timeout_ms: int) -> float:
    """Seconds from consumer start (a new group) to its first message."""
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=f"bench-join-{session_timeout_ms}",
        auto_offset_reset="earliest",
        session_timeout_ms=session_timeout_ms,
        # aiokafka requires the heartbeat to be well inside the session.
        heartbeat_interval_ms=session_timeout_ms // 3,
    )
    started = time.perf_counter()
    await consumer.start()
    try:
        await consumer.getone()
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def main() -> None:
    print(f"bench_join  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  a new group's first read")
    broker = EmbeddedBroker.start(preferred_port=0)
    try:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(TOPIC, b"x")
        finally:
            await producer.stop()
        for timeout_ms in SESSION_TIMEOUTS_MS:
            seconds = await first_read_after(broker.bootstrap_servers, timeout_ms)
            print(f"  session timeout {timeout_ms / 1000:4.1f} s: first read after {seconds:.2f} s")
    finally:
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
