"""Dead-letters a /define request that failed with a bug, so it can be replayed by hand."""

import asyncio

from quart import current_app, g, request

from batch_conductor_service.errors import DeadLetterUnavailableError
from batch_conductor_service.protocols import DlqProducerProtocol
from batch_conductor_service.wiring.providers import app_container
from batch_conductor_service.wiring.settings import Settings
from common_core.events import DeadLetterReason
from common_core.topics import Topic
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)

DEFINE_ENDPOINT = "pipelines.define_pipeline"


async def dead_letter_failed_resolution(exc: Exception) -> None:
    """Best effort, bounded in time: the caller's 500 must not wait for or fail on Kafka."""
    container = app_container(current_app)
    settings = await container.get(Settings)
    dead_letters = await container.get(DlqProducerProtocol)
    body = await request.get_data(cache=True)
    try:
        await asyncio.wait_for(
            dead_letters.send(
                original_topic=Topic.PIPELINE_RESOLUTION.value,
                payload=body if isinstance(body, bytes) else body.encode(),
                reason=DeadLetterReason.RESOLUTION_FAILED.value,
                error=repr(exc),
                correlation_id=g.get("correlation_id"),
            ),
            settings.RESOLUTION_DLQ_TIMEOUT_SECONDS,
        )
    except (DeadLetterUnavailableError, TimeoutError) as dlq_error:
        logger.warning("resolution_dead_letter_failed", error=repr(dlq_error))
    else:
        logger.info("resolution_dead_lettered")
