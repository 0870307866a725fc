"""The composition root: `create_app(settings)` alone builds the app and its container."""

from collections.abc import Sequence

from dishka import Provider
from prometheus_client import CollectorRegistry
from quart import Quart

from batch_conductor_service.api.batch_routes import batch_bp
from batch_conductor_service.api.docs_routes import docs_bp
from batch_conductor_service.api.health_routes import health_bp
from batch_conductor_service.api.internal_auth import require_internal_api_key
from batch_conductor_service.api.openapi_routes import openapi_bp
from batch_conductor_service.api.phase_routes import phase_bp
from batch_conductor_service.api.pipeline_routes import pipeline_bp
from batch_conductor_service.consumer.translation import (
    CONSUMED_TOPICS,
    STEPS_REPORTED_BY_EVENTS,
)
from batch_conductor_service.domain.pipelines_file import load_pipelines
from batch_conductor_service.domain.step_graph import PipelineConfigError, StepGraph
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.wiring.settings import Settings
from batch_conductor_service.wiring.startup import (
    build_container,
    setup_error_mapping,
    setup_lifecycle,
    setup_request_context,
)
from batch_conductor_service.wiring.tracing import (
    Tracing,
    instrument_app,
    stop_tracing_after_serving,
)


def create_app(
    settings: Settings,
    *,
    graph: StepGraph | None = None,
    registry: CollectorRegistry | None = None,
    providers: Sequence[Provider] = (),
    tracing: Tracing | None = None,
) -> Quart:
    """Raises PipelineConfigError when the pipelines file cannot be ordered, or lacks a step
    that the consumed events report; TracingSettingError for an OTEL_* value it cannot use.
    `tracing`: by default as the environment says (wiring/tracing.py)."""
    graph = graph if graph is not None else _load_graph(settings)
    metrics = BcsMetrics(registry if registry is not None else CollectorRegistry())
    if tracing is None:
        tracing = Tracing.from_environment(settings)
    app = Quart("batch_conductor_service")
    app.config["MAX_CONTENT_LENGTH"] = settings.MAX_REQUEST_BYTES
    app.config["BODY_TIMEOUT"] = settings.REQUEST_BODY_TIMEOUT_SECONDS
    app.register_blueprint(health_bp)
    app.register_blueprint(pipeline_bp)
    app.register_blueprint(phase_bp)
    app.register_blueprint(batch_bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(docs_bp)
    metrics.export_known_series(steps=graph.order, topics=CONSUMED_TOPICS, routes=_routes(app))
    # First: its after_request hook then runs last, once the response is complete.
    instrument_app(app, tracing, metrics)
    setup_request_context(app, metrics.http)
    if settings.INTERNAL_API_KEY is not None:
        # After the request context is set up: its log context is cleared first.
        require_internal_api_key(app, settings.INTERNAL_API_KEY.get_secret_value(), metrics)
    setup_error_mapping(app)
    container = build_container(settings, graph, metrics, tracing, providers)
    setup_lifecycle(app, container)
    stop_tracing_after_serving(app, tracing)
    return app


def _routes(app: Quart) -> list[tuple[str, str]]:
    """(method, route) of every route the app serves, as the request metrics label them."""
    return [
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    ]


def _load_graph(settings: Settings) -> StepGraph:
    graph = load_pipelines(settings.PIPELINES_PATH)
    try:
        graph.require_steps(STEPS_REPORTED_BY_EVENTS)
    except PipelineConfigError as exc:
        raise PipelineConfigError(f"{settings.PIPELINES_PATH}: {exc}") from exc
    return graph
