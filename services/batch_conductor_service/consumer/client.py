"""The Kafka client the consumer connects with; EventConsumer subscribes it to its topics."""

from aiokafka import AIOKafkaConsumer

from batch_conductor_service.wiring.settings import Settings


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
