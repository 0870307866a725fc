"""`bcs dlq list`'s reader against the bundled broker, which reports a partition's end as the
base offset of its last batch plus one: records sent together must all be listed all the same."""

import asyncio
import uuid

from aiokafka import AIOKafkaProducer

from batch_conductor_service.dead_letter.reader import read_dead_letters
from tests.unit.test_dead_letter_tools import record_bytes

TOPIC = "huleedu.essay.spellcheck.completed.v1"


async def send_together(bootstrap: str, topic: str, batches: list[tuple[int, int]]) -> None:
    """Each (partition, count) as one produce batch: sent without waiting, then awaited."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=100)
    await producer.start()
    try:
        for partition, count in batches:
            sent = [
                await producer.send(
                    topic, record_bytes(f"{partition}-{i}".encode()), partition=partition
                )
                for i in range(count)
            ]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def test_records_sent_in_batches_are_all_listed(kafka_bootstrap: str) -> None:
    topic = f"{TOPIC}.{uuid.uuid4().hex[:8]}"
    batches = [(0, 6), (0, 1), (1, 3), (0, 4)]
    await send_together(kafka_bootstrap, f"{topic}.DLQ", batches)
    entries = await read_dead_letters(kafka_bootstrap, topic)
    assert [(e.partition, e.offset) for e in entries] == [
        *((0, offset) for offset in range(11)),
        *((1, offset) for offset in range(3)),
    ]
    payloads = [e.record.payload_bytes() for e in entries if e.record is not None]
    assert payloads[:7] == [*(f"0-{i}".encode() for i in range(6)), b"0-0"]
