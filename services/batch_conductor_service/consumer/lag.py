"""Consumer lag per assigned partition, and only for partitions this consumer still owns."""

from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError

from batch_conductor_service.metrics import BcsMetrics


class ConsumerLag(ConsumerRebalanceListener):  # type: ignore[misc]
    """Sets the lag gauge per assigned partition. As the rebalance listener it forgets revoked
    partitions: their lag is the new owner's to report, and ours would stay frozen forever."""

    def __init__(self, metrics: BcsMetrics) -> None:
        self._metrics = metrics

    async def record(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await consumer.position(tp)
            except IllegalStateError:
                # Revoked by a rebalance since assignment() was read; the listener drops its gauge.
                continue
            self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                max(0, highwater - position)
            )

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._metrics.consumer_lag.remove(tp.topic, str(tp.partition))

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.forget(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass
