"""Tells ConsumerHealth when the broker last answered the consumer's client.

aiokafka's fetcher swallows connection errors and time-outs: with the broker gone or frozen,
`getmany` returns nothing and no call fails. So a watch beside the loop (never in
`consume_once`: it adds nothing to the hot path) looks every third of the silence limit:

- first at the time of the last successful fetch response of each assigned partition
  (`last_poll_timestamp`, public, free: the fetcher long-polls every partition it has no
  records buffered for, so an idle consumer's broker answers many times a second);
- only when no fetch answered since the last look (no partition assigned, the fetched records
  still waiting for a slow store, or the broker silent), a metadata request (`topics()`, one
  round trip), bounded by a time-out since a frozen broker never answers it.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from batch_conductor_service.consumer.health import ConsumerHealth
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)


class Client(Protocol):
    """What the watch reads of an AIOKafkaConsumer."""

    def assignment(self) -> set[TopicPartition]: ...
    def last_poll_timestamp(self, partition: TopicPartition) -> int | None: ...
    async def topics(self) -> set[str]: ...


class BrokerContact:
    def __init__(
        self,
        health: ConsumerHealth,
        silence_seconds: float,
        *,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._health = health
        # A look every third of the limit: silence is seen at most a third late, and a
        # probe that times out still leaves two more before the limit.
        self._interval = silence_seconds / 3
        self._wall_clock = wall_clock
        self._sleep = sleep

    async def watch(self, client: Client) -> None:
        """Looks until cancelled (when the client closes)."""
        self._health.heard_from_broker()  # it has just joined the group
        while True:
            await self._sleep(self._interval)
            await self.look(client)

    async def look(self, client: Client) -> None:
        fetched_ago = self._last_fetch_ago(client)
        if fetched_ago is not None:
            self._health.heard_from_broker(fetched_ago)
        if self._health.broker_silence() < self._interval:
            return
        try:
            async with asyncio.timeout(self._interval):
                await client.topics()
        except (KafkaError, TimeoutError) as exc:
            logger.debug("broker_probe_failed", error=repr(exc))
            return
        self._health.heard_from_broker()

    def _last_fetch_ago(self, client: Client) -> float | None:
        """Seconds since the newest fetch response of an assigned partition, if any."""
        stamps = []
        # No await between the two: every partition read is still assigned (aiokafka asserts).
        for tp in client.assignment():
            stamp = client.last_poll_timestamp(tp)
            if stamp is not None:
                stamps.append(stamp)
        if not stamps:
            return None
        return max(0.0, self._wall_clock() - max(stamps) / 1000)
