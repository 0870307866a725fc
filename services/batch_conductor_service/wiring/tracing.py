"""Tracing's set-up (docs/tracing.md): OpenTelemetry's SDK exporting over OTLP, its maintained
instrumentations for the HTTP server (ASGI), Redis and asyncpg, the consumer's own spans.

On only when BCS_TRACING_ENABLED (the default) and an OTLP endpoint is configured
(OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); off, nothing is wrapped,
patched or started, and a request or a fetch costs what it did before. The SDK reads its
standard variables itself (endpoint, headers, timeout, OTEL_BSP_*, OTEL_TRACES_SAMPLER,
OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES); this module chooses the exporter by
OTEL_EXPORTER_OTLP_PROTOCOL and checks the values it reads itself.
"""

import asyncio
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry.trace import Tracer
from quart import Quart

from batch_conductor_service import SERVICE_NAME as BCS_SERVICE_NAME
from batch_conductor_service import service_version
from batch_conductor_service.api.tracing import (
    annotate_request_spans,
    without_unreadable_trace_headers,
)
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.wiring.settings import Settings, SettingsError
from huleedu_service_libs.logging_utils import get_logger, include_trace_ids

# The SDK, its exporters and the instrumentations are imported only once tracing is on: a
# service without it does not pay for loading them.
if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

logger = get_logger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
PROTOCOLS = ("http/protobuf", "grpc")
# The OTLP specification's default.
DEFAULT_PROTOCOL = "http/protobuf"
QUEUE_SIZE_VARIABLE = "OTEL_BSP_MAX_QUEUE_SIZE"
DEFAULT_QUEUE_SIZE = 2048  # the SDK's
BATCH_SIZE_VARIABLE = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
DEFAULT_BATCH_SIZE = 512  # the SDK's
LINK_LIMIT_VARIABLE = "OTEL_SPAN_LINK_COUNT_LIMIT"
SERVICE_NAMESPACE_VALUE = "huleedu"
# Spans still queued at shutdown get this long to reach the collector.
FLUSH_SECONDS = 3.0


class TracingSettingError(SettingsError):
    """An OTEL_* variable this service reads has a value it cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class TracingConfig:
    protocol: str
    max_queue_size: int
    # At most the queue's size (the SDK refuses more): a small queue set alone still works.
    max_export_batch_size: int
    # Links of a fetch's store span: one per message of the fetch, unless the operator set
    # OTEL_SPAN_LINK_COUNT_LIMIT (None: the SDK reads it).
    max_links: int | None


def tracing_config(
    settings: Settings, environ: Mapping[str, str] = os.environ
) -> TracingConfig | None:
    """None when tracing is off. Raises TracingSettingError for a value it cannot use."""
    if not settings.TRACING_ENABLED:
        return None
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if not any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES):
        return None
    protocol, variable = DEFAULT_PROTOCOL, PROTOCOL_VARIABLES[-1]
    for name in PROTOCOL_VARIABLES:
        if environ.get(name, "").strip():
            protocol, variable = environ[name].strip().lower(), name
            break
    if protocol not in PROTOCOLS:
        raise TracingSettingError(
            f"invalid setting {variable}={environ[variable]!r}: BCS exports traces over "
            f"{' or '.join(PROTOCOLS)}"
        )
    queue_size = _positive(environ, QUEUE_SIZE_VARIABLE, DEFAULT_QUEUE_SIZE)
    batch_size = _positive(environ, BATCH_SIZE_VARIABLE, DEFAULT_BATCH_SIZE)
    max_links = (
        None if LINK_LIMIT_VARIABLE in environ else max(128, settings.KAFKA_MAX_POLL_RECORDS)
    )
    return TracingConfig(protocol, queue_size, min(batch_size, queue_size), max_links)


def _positive(environ: Mapping[str, str], variable: str, default: int) -> int:
    raw = environ.get(variable, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        value = 0
    if value < 1:
        raise TracingSettingError(f"invalid setting {variable}={raw!r}: must be a positive integer")
    return value


def service_resource(settings: Settings) -> "Resource":
    """The standard resource attributes; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when
    set, win over this service's own (Resource.create alone would let ours win)."""
    from opentelemetry.sdk.resources import (
        SERVICE_NAME,
        SERVICE_NAMESPACE,
        SERVICE_VERSION,
        OTELResourceDetector,
        Resource,
    )

    own = {
        SERVICE_NAME: BCS_SERVICE_NAME,
        SERVICE_VERSION: service_version(),
        SERVICE_NAMESPACE: SERVICE_NAMESPACE_VALUE,
        "deployment.environment": settings.ENVIRONMENT.value,
        # The attribute's name in the semantic conventions since 1.27.
        "deployment.environment.name": settings.ENVIRONMENT.value,
    }
    return Resource.create({**own, **OTELResourceDetector().detect().attributes})


class Tracing:
    """The service's tracer provider and instrumentations; `tracer` is None when off."""

    def __init__(
        self,
        config: TracingConfig | None,
        *,
        resource: "Resource | None" = None,
        exporter: "SpanExporter | None" = None,
    ) -> None:
        """`exporter`: for tests; by default the OTLP exporter of the configured protocol,
        built when serving starts."""
        self.config = config
        self._exporter = exporter
        self._instrumented = False
        self.provider: TracerProvider | None = None
        self.tracer: Tracer | None = None
        if config is not None:
            from opentelemetry.sdk import trace as sdk_trace

            self.provider = sdk_trace.TracerProvider(
                resource=resource, span_limits=sdk_trace.SpanLimits(max_links=config.max_links)
            )
            self.tracer = self.provider.get_tracer(BCS_SERVICE_NAME, service_version())

    @classmethod
    def from_environment(cls, settings: Settings) -> "Tracing":
        config = tracing_config(settings)
        if config is None:
            return cls(None)
        return cls(config, resource=service_resource(settings))

    def start(self, metrics: BcsMetrics) -> None:
        """Starts exporting (counting into `metrics`) and instruments Redis and asyncpg
        (process-wide patches: one app per process serves)."""
        if self.provider is None or self.config is None or self._instrumented:
            return
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        from batch_conductor_service.wiring.trace_export import (
            BoundedBatchProcessor,
            otlp_exporter,
        )

        exporter = self._exporter or otlp_exporter(self.config.protocol)
        self.provider.add_span_processor(BoundedBatchProcessor(exporter, self.config, metrics))
        RedisInstrumentor().instrument(tracer_provider=self.provider)
        AsyncPGInstrumentor().instrument(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider
        )
        self._instrumented = True
        include_trace_ids(True)
        logger.info(
            "tracing_started",
            protocol=self.config.protocol,
            max_queue_size=self.config.max_queue_size,
        )

    async def stop(self, timeout_seconds: float = FLUSH_SECONDS) -> None:
        """Undoes the instrumentation and gives the spans still queued `timeout_seconds` to be
        exported, in a thread of its own: a collector that is away cannot hold up the exit."""
        if self.provider is None:
            return
        if self._instrumented:
            from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
            from opentelemetry.instrumentation.redis import RedisInstrumentor

            RedisInstrumentor().uninstrument()
            AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
            include_trace_ids(False)
            self._instrumented = False
        provider = self.provider
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def shut_down() -> None:
            try:
                provider.shutdown()
            finally:
                loop.call_soon_threadsafe(_settle, done)

        threading.Thread(target=shut_down, name="bcs-trace-flush", daemon=True).start()
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout_seconds)
        except TimeoutError:
            logger.warning("trace_flush_timed_out", seconds=timeout_seconds)


def _settle(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


def instrument_app(app: Quart, tracing: Tracing, metrics: BcsMetrics) -> None:
    """Wraps the app in OpenTelemetry's ASGI middleware (a server span per request, continuing
    the caller's traceparent), names and annotates the spans, and starts tracing when serving
    starts (before the consumer does: create_app calls this before the container's hooks).
    Does nothing when tracing is off."""
    if tracing.provider is None:
        return
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.metrics import NoOpMeterProvider

    middleware = OpenTelemetryMiddleware(
        app.asgi_app,
        # The method alone until the route is known (api/tracing.py renames the span): the
        # path holds batch ids.
        default_span_details=lambda scope: (str(scope.get("method", "HTTP")), {}),
        tracer_provider=tracing.provider,
        # Request metrics are Prometheus's (huleedu_service_libs.http_metrics).
        meter_provider=NoOpMeterProvider(),
        # One span per request: the body's receive and the response's send add nothing.
        exclude_spans=["receive", "send"],
    )
    app.asgi_app = without_unreadable_trace_headers(middleware)  # type: ignore[method-assign, assignment]
    annotate_request_spans(app)

    @app.before_serving
    async def _start_tracing() -> None:
        tracing.start(metrics)


def stop_tracing_after_serving(app: Quart, tracing: Tracing) -> None:
    """Registered after the container's own hook: the spans of its last work are flushed."""
    if tracing.provider is None:
        return

    @app.after_serving
    async def _stop_tracing() -> None:
        await tracing.stop()
