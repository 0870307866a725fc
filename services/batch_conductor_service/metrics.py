"""Every Prometheus metric of the service, declared once against an injected registry."""

from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from huleedu_service_libs.http_metrics import HttpMetrics


class BcsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
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
