"""Dead-letters a /define request that failed with a bug, so it can be replayed by hand."""

from quart import current_app, g, request

from batch_conductor_service.dead_letter.resolution_sender import FailedResolutionDeadLetters
from batch_conductor_service.wiring.providers import app_container
from huleedu_service_libs.log_bounds import clip_error

DEFINE_ENDPOINT = "pipelines.define_pipeline"


async def dead_letter_failed_resolution(exc: Exception) -> None:
    """Hands the failed request to the background sender; returns at once."""
    sender = await app_container(current_app).get(FailedResolutionDeadLetters)
    body = await request.get_data(cache=True)
    sender.submit(
        body if isinstance(body, bytes) else body.encode(),
        clip_error(exc),
        g.get("correlation_id"),
    )
