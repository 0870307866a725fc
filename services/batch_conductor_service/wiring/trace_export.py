"""The export end of tracing, loaded once tracing is on (wiring/tracing.py): the SDK's OTLP
exporter for the configured protocol, behind the SDK's BatchSpanProcessor (a background thread
exports; ending a span only queues it), with what is delivered and what is dropped counted.

The SDK's processor drops a span silently when its queue is full (it counts drops only in its
own OpenTelemetry metrics, which this service does not run: its metrics are Prometheus's), so
the bound is kept, and counted, in front of it: at most OTEL_BSP_MAX_QUEUE_SIZE spans wait
between ending and being taken for export.
"""

import threading
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.wiring.tracing import TracingConfig
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)


def otlp_exporter(protocol: str) -> SpanExporter:
    """The SDK's OTLP exporter for the protocol; it reads its endpoint, headers, timeout,
    compression and certificates from the standard variables. Imported when chosen: gRPC
    weighs on start-up."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter()


class Admission:
    """Spans handed to the batch processor and not yet taken for export, at most `capacity`:
    the processor's own queue drops silently when full, so the bound is kept (and counted) in
    front of it."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._waiting = 0
        self._lock = threading.Lock()

    def admit(self) -> bool:
        with self._lock:
            if self._waiting >= self._capacity:
                return False
            self._waiting += 1
            return True

    def taken(self, count: int) -> None:
        with self._lock:
            self._waiting = max(0, self._waiting - count)


class CountingExporter(SpanExporter):
    """The OTLP exporter, counting what it delivered and what it could not."""

    def __init__(self, inner: SpanExporter, admission: Admission, metrics: BcsMetrics) -> None:
        self._inner = inner
        self._admission = admission
        self._metrics = metrics

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._admission.taken(len(spans))
        try:
            result = self._inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
            logger.exception("trace_export_raised", spans=len(spans))
        if result is SpanExportResult.SUCCESS:
            self._metrics.trace_spans_exported.inc(len(spans))
        else:
            self._metrics.trace_spans_dropped.labels("export_failed").inc(len(spans))
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class BoundedBatchProcessor(SpanProcessor):
    """The SDK's BatchSpanProcessor (a background thread exports; ending a span only queues
    it), behind an admission that drops and counts a span the queue has no room for."""

    def __init__(self, exporter: SpanExporter, config: TracingConfig, metrics: BcsMetrics) -> None:
        self._admission = Admission(config.max_queue_size)
        self._metrics = metrics
        self._inner = BatchSpanProcessor(
            CountingExporter(exporter, self._admission, metrics),
            max_queue_size=config.max_queue_size,
            max_export_batch_size=config.max_export_batch_size,
        )

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None or not span.context.trace_flags.sampled:
            return
        if self._admission.admit():
            self._inner.on_end(span)
        else:
            self._metrics.trace_spans_dropped.labels("queue_full").inc()

    def shutdown(self) -> None:
        self._inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)
