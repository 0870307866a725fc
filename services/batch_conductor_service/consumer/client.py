"""The Kafka client the consumer connects with (EventConsumer subscribes it to its topics), and
how it is started and closed."""

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from batch_conductor_service.consumer.lag import ConsumerLag
from batch_conductor_service.wiring.settings import Settings
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)


def new_consumer_client(settings: Settings) -> AIOKafkaConsumer:
    session_ms = int(settings.KAFKA_SESSION_TIMEOUT_SECONDS * 1000)
    return AIOKafkaConsumer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        group_id=settings.KAFKA_CONSUMER_GROUP_ID,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=session_ms // 3,
        # Up to 8 MiB per partition per fetch (aiokafka's default is 1 MiB): a backlog is read
        # in a few large fetches, not a fetch round trip per thousand messages.
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_wait_ms=100,
    )


async def start_unless_stopping(consumer: AIOKafkaConsumer, stopping: asyncio.Event) -> bool:
    """Joining a group can take seconds; a stop (Ctrl-C) must not wait for it."""
    start = asyncio.ensure_future(consumer.start())
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({start, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        start.cancel()
        raise
    finally:
        stopped.cancel()
    if start.done():
        start.result()
        return True
    start.cancel()
    with contextlib.suppress(asyncio.CancelledError, KafkaError):
        await start
    return False


async def close_client(consumer: AIOKafkaConsumer, lag: ConsumerLag) -> None:
    lag.forget(consumer.assignment())
    try:
        await consumer.stop()
    except KafkaError as exc:
        logger.warning("consumer_close_failed", error=repr(exc))
    else:
        logger.info("consumer_closed")
