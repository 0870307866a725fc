"""Builds the one container and ties its lifetime, and the app's error mapping, to the app."""

import math
import uuid
from collections.abc import Sequence

from dishka import AsyncContainer, Provider, make_async_container
from prometheus_client import CollectorRegistry
from quart import Quart, Response, g, request
from quart_dishka import QuartDishka
from werkzeug.exceptions import HTTPException

from batch_conductor_service.api.failed_resolution_dlq import (
    DEFINE_ENDPOINT,
    dead_letter_failed_resolution,
)
from batch_conductor_service.api.responses import error_response
from batch_conductor_service.consumer.fetch_loop import EventConsumer
from batch_conductor_service.domain.resolution_rules import UnknownPipelineError
from batch_conductor_service.domain.step_graph import StepGraph
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.health import HealthReporters
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.wiring.providers import default_providers
from batch_conductor_service.wiring.settings import Settings
from batch_conductor_service.wiring.shutdown import ShutdownBudget
from huleedu_service_libs.correlation import usable_correlation_id
from huleedu_service_libs.logging_utils import bind_correlation_id, clear_log_context, get_logger

logger = get_logger(__name__)
CORRELATION_HEADER = "X-Correlation-ID"


def build_container(
    settings: Settings,
    graph: StepGraph,
    metrics: BcsMetrics,
    providers: Sequence[Provider] = (),
) -> AsyncContainer:
    # Later providers override earlier ones, which is how tests swap in fakes.
    return make_async_container(
        *default_providers(),
        *providers,
        context={
            Settings: settings,
            StepGraph: graph,
            CollectorRegistry: metrics.registry,
            BcsMetrics: metrics,
        },
    )


def setup_lifecycle(app: Quart, container: AsyncContainer) -> None:
    QuartDishka(app=app, container=container)

    @app.before_serving
    async def _start() -> None:
        # Resolve what the service cannot run without now, so a bad setup fails start-up.
        await container.get(BatchStateRepositoryProtocol)
        await container.get(HealthReporters)
        settings = await container.get(Settings)
        if settings.KAFKA_CONSUMER_ENABLED:
            # A background task: an unreachable broker must not keep the HTTP API down.
            (await container.get(EventConsumer)).start()
        logger.info("service_started")

    @app.after_serving
    async def _stop() -> None:
        settings = await container.get(Settings)
        budget = ShutdownBudget(settings.SHUTDOWN_TIMEOUT_SECONDS)
        try:
            consumer = await container.get(EventConsumer)
            await consumer.stop(budget.for_consumer)
        finally:
            # Whatever happened to the consumer, the Redis, PostgreSQL and Kafka clients close.
            await budget.close_within(container.close, "container")
        logger.info("service_stopped")


def setup_request_context(app: Quart) -> None:
    @app.before_request
    async def _bind_correlation_id() -> None:
        clear_log_context()
        supplied = usable_correlation_id(request.headers.get(CORRELATION_HEADER))
        g.correlation_id = supplied or str(uuid.uuid4())
        bind_correlation_id(g.correlation_id)

    @app.after_request
    async def _echo_correlation_id(response: Response) -> Response:
        correlation_id = g.get("correlation_id")
        if correlation_id:
            response.headers[CORRELATION_HEADER] = correlation_id
        return response


def setup_error_mapping(app: Quart) -> None:
    @app.errorhandler(UnknownPipelineError)
    async def _unknown_pipeline(exc: UnknownPipelineError) -> Response:
        return error_response(
            400,
            "unknown_pipeline",
            {
                "message": f"unknown pipeline or step {exc.requested!r}",
                "known_pipelines": exc.known_pipelines,
                "known_steps": exc.known_steps,
            },
        )

    @app.errorhandler(StateStoreUnavailableError)
    async def _store_down(exc: StateStoreUnavailableError) -> Response:
        logger.warning("state_store_unavailable", store=exc.store, reason=exc.reason)
        retry_after = str(max(1, math.ceil(exc.retry_after_seconds)))
        return error_response(
            503,
            "state_store_unavailable",
            f"batch state cannot be read right now ({exc.store}); retry later",
            headers={"Retry-After": retry_after},
        )

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        error = "request_too_large" if code == 413 else exc.name.lower().replace(" ", "_")
        return error_response(code, error, exc.description)

    @app.errorhandler(Exception)
    async def _bug(exc: Exception) -> Response:
        logger.exception("unhandled_error", path=request.path)
        if request.endpoint == DEFINE_ENDPOINT:
            await dead_letter_failed_resolution(exc)
        return error_response(500, "internal_error", "an unexpected error occurred")
