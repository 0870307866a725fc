"""Builds the one container and ties its lifetime, and the app's error mapping, to the app."""

import asyncio
import math
import time
from collections.abc import Sequence

import structlog
from dishka import AsyncContainer, Provider, make_async_container
from prometheus_client import CollectorRegistry
from quart import Quart, Response, request
from quart_dishka import QuartDishka
from werkzeug.exceptions import HTTPException

from batch_conductor_service.api.correlation import CORRELATION_HEADER, adopt_correlation_id
from batch_conductor_service.api.request_log import log_request
from batch_conductor_service.api.responses import error_response, internal_error_response
from batch_conductor_service.api.tracing import record_unhandled_error
from batch_conductor_service.consumer.loop import EventConsumer
from batch_conductor_service.domain.resolution_rules import UnknownPipelineError
from batch_conductor_service.domain.step_graph import StepGraph
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.health import HealthReporters, Serving
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.wiring.providers import default_providers
from batch_conductor_service.wiring.settings import (
    PLATFORM_KEY_VARIABLE,
    Settings,
    platform_key_is_set,
)
from batch_conductor_service.wiring.tracing import Tracing
from huleedu_service_libs.http_metrics import HttpMetrics
from huleedu_service_libs.log_bounds import clip
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)
# Of the one budget (SHUTDOWN_TIMEOUT_SECONDS) after serving stops, the consumer's share.
CONSUMER_SHARE = 0.6


def build_container(
    settings: Settings,
    graph: StepGraph,
    metrics: BcsMetrics,
    tracing: Tracing,
    providers: Sequence[Provider] = (),
) -> AsyncContainer:
    # Later providers override earlier ones, which is how tests swap in fakes.
    return make_async_container(
        *default_providers(settings),
        *providers,
        context={
            Settings: settings,
            StepGraph: graph,
            CollectorRegistry: metrics.registry,
            BcsMetrics: metrics,
            Tracing: tracing,
        },
    )


async def open_dependencies(app: Quart) -> None:
    """Says in one line what the service runs with, then opens what it cannot run without (the
    stores and what /healthz asks), so that a bad setup fails start-up (a StartupError names the
    setting); whatever was opened before the failure is closed again. `bcs` calls it before it
    serves (a store that cannot be reached is then its one line, not a traceback from inside the
    ASGI lifespan), the start-up hook again for an app run otherwise (tests): once is enough."""
    if app.extensions.get(_OPENED):
        return
    container: AsyncContainer = app.extensions["QUART_DISHKA"].container
    logger.info("service_configured", **(await container.get(Settings)).in_use())
    try:
        await container.get(BatchStateRepositoryProtocol)
        await container.get(HealthReporters)
    except BaseException:
        await container.close()
        raise
    app.extensions[_OPENED] = True


_OPENED = "bcs_dependencies_opened"


def setup_lifecycle(app: Quart, container: AsyncContainer) -> None:
    QuartDishka(app=app, container=container)

    @app.before_serving
    async def _start() -> None:
        await open_dependencies(app)
        settings = await container.get(Settings)
        if platform_key_is_set():
            logger.info(
                "platform_internal_api_key_ignored",
                variable=PLATFORM_KEY_VARIABLE,
                reason="the platform's BOS sends BCS no X-Internal-API-Key, so requiring the "
                "platform key would refuse every /define with 401; set BCS_INTERNAL_API_KEY to "
                "require a key of BCS's own",
                key_required=settings.INTERNAL_API_KEY is not None,
            )
        if settings.KAFKA_CONSUMER_ENABLED:
            # A background task: an unreachable broker must not keep the HTTP API down.
            (await container.get(EventConsumer)).start()
        logger.info("service_started")

    @app.after_serving
    async def _stop() -> None:
        (await container.get(Serving)).begin_shutdown()
        budget = (await container.get(Settings)).SHUTDOWN_TIMEOUT_SECONDS
        deadline = time.monotonic() + budget
        try:
            # Its stop commits the batch in hand and leaves the group; the clients get the rest.
            await (await container.get(EventConsumer)).stop(budget * CONSUMER_SHARE)
        finally:
            # Whatever happened to the consumer, the Redis, PostgreSQL and Kafka clients close;
            # cut short, whatever close had not reached is left open until the process exits.
            try:
                await asyncio.wait_for(container.close(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                logger.error("shutdown_close_timed_out", closing="container")
        logger.info("service_stopped")


def setup_request_context(app: Quart, http_metrics: HttpMetrics) -> None:
    # One hook each side for all per-request work: every Quart hook costs an await per request.
    @app.before_request
    async def _start_request() -> None:
        http_metrics.start_timer()
        structlog.contextvars.clear_contextvars()

    @app.after_request
    async def _finish_request(response: Response) -> Response:
        response.headers[CORRELATION_HEADER] = adopt_correlation_id()
        log_request(response, http_metrics.record(response))
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
        adopt_correlation_id()
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
        adopt_correlation_id()
        record_unhandled_error(exc)
        logger.exception("unhandled_error", path=clip(request.path, 300))
        return internal_error_response()
