"""How far a consumer group has got: the sum of its committed offsets, read from the broker.

The service commits a message's offset only after its effects are stored, so a group whose
committed offsets reach the end of every partition has projected every message. Read with a
consumer of the group that never subscribes, so it never joins: the bundled broker answers the
admin client's OffsetFetch in a form aiokafka cannot decode."""

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition


class GroupProgress:
    def __init__(self, bootstrap: str, group_id: str, topics: list[str]) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False
        )
        self._topics = topics
        self._partitions: list[TopicPartition] = []

    async def __aenter__(self) -> "GroupProgress":
        await self._consumer.start()
        for topic in self._topics:
            partitions = self._consumer.partitions_for_topic(topic) or set()
            self._partitions += [TopicPartition(topic, p) for p in sorted(partitions)]
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def committed(self) -> int:
        offsets = await asyncio.gather(*(self._consumer.committed(tp) for tp in self._partitions))
        return sum(offset or 0 for offset in offsets)
