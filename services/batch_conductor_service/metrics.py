"""Every Prometheus metric of the service, declared once against an injected registry."""

import platform
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from batch_conductor_service import service_version
from common_core.events.dead_letter import DeadLetterReason
from huleedu_service_libs.http_metrics import HttpMetrics

# The label values known before their first event, exported at zero from start-up: a rule's
# rate() or increase() then counts the first event, and the dashboard shows the series at all.
# (Steps, topics and routes come from the pipelines file, the consumer and the app.)
RESOLUTION_STATUSES = (
    "success",
    "unknown_pipeline",
    "precondition_failed",
    "state_unavailable",
    "failure",
)
EVENT_OUTCOMES = (
    "applied",
    "duplicate",
    "dead_lettered",
    "replay_failed",
    "retried",
    "parked",
    "ignored",
)
DLQ_REASONS = tuple(reason.value for reason in DeadLetterReason)
CONSUMER_ERROR_KINDS = ("infrastructure", "kafka", "isolating", "unexpected")
ATOMIC_RETRY_OPERATIONS = ("apply",)
FALLBACK_WRITE_OPERATIONS = ("apply",)
_PLACEMENT_OPERATIONS = (
    "placement_index",
    "placement_lookup",
    "placement_park",
    "placement_parked",
    "placement_unpark",
    "health",
)
STORE_OPERATIONS = {
    "redis": (
        "read",
        "apply",
        "restore",
        "parse",
        "lost_keys",
        "behind_record",
        *_PLACEMENT_OPERATIONS,
    ),
    "postgresql": ("record", "load", "version", "placement_count", *_PLACEMENT_OPERATIONS),
}
UNPLACED_OUTCOMES = (
    "parked",
    "placed_on_arrival",
    "placed_by_roster",
    "expired",
    "refused",
    "failed",
)
AUTH_FAILURE_REASONS = ("missing", "invalid")
SPAN_DROP_REASONS = ("queue_full", "export_failed")
# Per route: the success every route gives, and the 5xx the error-rate alert counts.
HTTP_STATUSES_AT_START = ("200", "500", "503")


class BcsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # The standard process, Python and GC collectors, on this registry, not the global one.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        build = Info(
            "bcs_build", "The running build: the service's version and Python's.", registry=registry
        )
        build.info({"version": service_version(), "python_version": platform.python_version()})
        self.http = HttpMetrics(registry)
        self.pipeline_resolutions = Counter(
            "bcs_pipeline_resolutions_total",
            "Pipeline resolutions by outcome.",
            ["status"],
            registry=registry,
        )
        self.pipeline_steps_pruned = Counter(
            "bcs_pipeline_steps_pruned_total",
            "Steps left out of an answer because the batch had already completed them.",
            ["step"],
            registry=registry,
        )
        self.events_processed = Counter(
            "bcs_events_processed_total",
            "Consumed events by topic and outcome. applied: this replica added the event's id "
            "to the answering store (Redis, or memory), which lets one writer per id do so: "
            "once per event across replicas. duplicate: the id was there already. "
            "dead_lettered: sent to the DLQ. retried: handled again after an outage. parked: "
            "an essay result naming no batch, kept until a roster names its essay. ignored: "
            "such a result whose status is not terminal. replay_failed: a message `bcs dlq "
            "replay` sent back failed again; its DLQ record stays, no second one is added.",
            ["event_type", "outcome"],
            registry=registry,
        )
        self.dlq_records = Counter(
            "bcs_dlq_records_total",
            "Records sent to a dead-letter topic, by original topic and reason.",
            ["topic", "reason"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "bcs_consumer_lag_messages",
            "Messages between the consumer's position and the partition's end.",
            ["topic", "partition"],
            registry=registry,
        )
        self.last_event_age = Gauge(
            "bcs_last_applied_event_age_seconds",
            "Age of the newest applied event at the time it was applied.",
            registry=registry,
        )
        self.consumer_errors = Counter(
            "bcs_consumer_errors_total",
            "Consumer failures: a store or DLQ down, batch retried (infrastructure); a Kafka "
            "error that made it reconnect (kafka); a write that failed for another reason and was "
            "split to find its poison message (isolating); a batch that failed unforeseen and "
            "was handled message by message (unexpected).",
            ["kind"],
            registry=registry,
        )
        self.consumer_batch_seconds = Histogram(
            "bcs_consumer_batch_duration_seconds",
            "Time to store the effects of one fetched batch of messages.",
            registry=registry,
        )
        self.repository_atomic_retries = Counter(
            "bcs_repository_atomic_retries_total",
            "WATCH conflicts that made an atomic write retry.",
            ["operation"],
            registry=registry,
        )
        self.repository_fallbacks = Counter(
            "bcs_repository_fallback_writes_total",
            "Atomic writes that gave up retrying and used commutative single-command writes.",
            ["operation"],
            registry=registry,
        )
        self.repository_errors = Counter(
            "bcs_repository_errors_total",
            "State store operations that failed, by store and operation.",
            ["store", "operation"],
            registry=registry,
        )
        self.circuit_state = Gauge(
            "bcs_circuit_breaker_open",
            "1 while the circuit breaker of a store is open (failing fast), else 0.",
            ["store"],
            registry=registry,
        )
        self.repository_read_fallbacks = Counter(
            "bcs_repository_read_fallbacks_total",
            "Counts reads served by PostgreSQL because Redis could not answer.",
            registry=registry,
        )
        self.resolution_dead_letters_dropped = Counter(
            "bcs_resolution_dead_letters_dropped_total",
            "Failed /define requests not dead-lettered because BCS_RESOLUTION_DLQ_PER_MINUTE "
            "was used up.",
            registry=registry,
        )
        self.state_rebuilds = Counter(
            "bcs_state_rebuilds_total",
            "Batches rebuilt in Redis from PostgreSQL (expired, evicted, or behind the record).",
            registry=registry,
        )
        self.unplaced_results = Counter(
            "bcs_unplaced_results_total",
            "Essay results that named no batch, by what became of them: parked (no roster names "
            "the essay yet; kept until one does), placed_on_arrival, placed_by_roster (a parked "
            "result applied to a batch when its roster arrived), expired (parked too long), "
            "refused (the parking lot was full: dead-lettered), failed (placed, but storing it "
            "failed).",
            ["outcome"],
            registry=registry,
        )
        self.internal_auth_failures = Counter(
            "bcs_internal_auth_failures_total",
            "Requests to /internal/ routes refused for a missing or invalid X-Internal-API-Key.",
            ["reason"],
            registry=registry,
        )
        self.trace_spans_exported = Counter(
            "bcs_trace_spans_exported_total",
            "Spans the OTLP exporter delivered to the collector (docs/tracing.md).",
            registry=registry,
        )
        self.trace_spans_dropped = Counter(
            "bcs_trace_spans_dropped_total",
            "Spans not delivered: queue_full (more were waiting for export than "
            "OTEL_BSP_MAX_QUEUE_SIZE: the collector is slow or away), export_failed (the "
            "collector refused them, or was not reached within OTEL_EXPORTER_OTLP_TIMEOUT).",
            ["reason"],
            registry=registry,
        )

    def export_known_series(
        self,
        *,
        steps: Iterable[str],
        topics: Iterable[str],
        routes: Iterable[tuple[str, str]],
    ) -> None:
        """Creates every labelled series with its known label values, at zero."""
        for status in RESOLUTION_STATUSES:
            self.pipeline_resolutions.labels(status)
        for step in steps:
            self.pipeline_steps_pruned.labels(step)
        for topic in topics:
            for outcome in EVENT_OUTCOMES:
                self.events_processed.labels(topic, outcome)
            for reason in DLQ_REASONS:
                self.dlq_records.labels(topic, reason)
        for kind in CONSUMER_ERROR_KINDS:
            self.consumer_errors.labels(kind)
        for operation in ATOMIC_RETRY_OPERATIONS:
            self.repository_atomic_retries.labels(operation)
        for operation in FALLBACK_WRITE_OPERATIONS:
            self.repository_fallbacks.labels(operation)
        for store, operations in STORE_OPERATIONS.items():
            for operation in operations:
                self.repository_errors.labels(store, operation)
        for outcome in UNPLACED_OUTCOMES:
            self.unplaced_results.labels(outcome)
        for reason in AUTH_FAILURE_REASONS:
            self.internal_auth_failures.labels(reason)
        for reason in SPAN_DROP_REASONS:
            self.trace_spans_dropped.labels(reason)
        for method, endpoint in routes:
            self.http.duration.labels(method, endpoint)
            for status in HTTP_STATUSES_AT_START:
                self.http.requests.labels(method, endpoint, status)

    def track_consumer(
        self, read_state: Callable[[], tuple[str, float]], states: Sequence[str]
    ) -> None:
        """Exports the consumer's state as /healthz sees it, read at each scrape."""
        self.registry.register(_ConsumerStateCollector(read_state, tuple(states)))


class _ConsumerStateCollector(Collector):
    def __init__(self, read_state: Callable[[], tuple[str, float]], states: tuple[str, ...]):
        self._read_state = read_state
        self._states = states

    def collect(self) -> Iterator[GaugeMetricFamily]:
        current, stalled_seconds = self._read_state()
        state = GaugeMetricFamily(
            "bcs_consumer_state",
            "1 for the Kafka consumer's current state (running, retrying, dead, ...), else 0.",
            labels=["state"],
        )
        for name in self._states:
            state.add_metric([name], 1.0 if name == current else 0.0)
        yield state
        yield GaugeMetricFamily(
            "bcs_consumer_stalled_seconds",
            "Seconds since the consumer last made progress while it keeps failing; 0 while it "
            "makes progress.",
            value=stalled_seconds,
        )
