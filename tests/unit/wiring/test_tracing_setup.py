"""wiring/tracing.py: tracing is off unless an OTLP endpoint is configured (and
BCS_TRACING_ENABLED is not false); the OTEL_* values it reads itself are checked, naming the
variable; the resource carries the standard attributes; spans the collector cannot take are
dropped and counted, never waited for."""

import threading
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry

from batch_conductor_service import service_version
from batch_conductor_service.dev.embedded_broker import free_port
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.wiring.settings import SettingsError
from batch_conductor_service.wiring.tracing import (
    Tracing,
    TracingConfig,
    TracingSettingError,
    service_resource,
    tracing_config,
)
from tests.unit.conftest import unit_settings

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


def test_without_an_endpoint_tracing_is_off() -> None:
    assert tracing_config(unit_settings(), {}) is None
    assert tracing_config(unit_settings(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}) is None
    assert Tracing(None).provider is None


def test_bcs_tracing_enabled_false_or_the_sdk_disabled_turns_it_off_whatever_the_endpoint() -> None:
    assert tracing_config(unit_settings(TRACING_ENABLED=False), ENDPOINT) is None
    assert tracing_config(unit_settings(), {**ENDPOINT, "OTEL_SDK_DISABLED": "true"}) is None


def test_with_an_endpoint_it_exports_over_http_protobuf_by_default() -> None:
    config = tracing_config(unit_settings(), ENDPOINT)
    assert config == TracingConfig("http/protobuf", 2048, 512, 2000)
    traces_only = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}
    assert tracing_config(unit_settings(), traces_only) is not None


def test_the_protocol_and_queue_size_come_from_the_sdks_variables() -> None:
    environ = {**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_BSP_MAX_QUEUE_SIZE": "64"}
    # A queue smaller than the SDK's default export batch: the batch is cut to fit.
    assert tracing_config(unit_settings(), environ) == TracingConfig("grpc", 64, 64, 2000)
    # The traces-only variable wins, as the SDK reads it.
    environ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
    config = tracing_config(unit_settings(), environ)
    assert config is not None
    assert config.protocol == "http/protobuf"
    # The operator's link limit is the SDK's to read.
    config = tracing_config(unit_settings(), {**ENDPOINT, "OTEL_SPAN_LINK_COUNT_LIMIT": "10"})
    assert config is not None
    assert config.max_links is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "many"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
    ],
)
def test_a_value_it_cannot_use_stops_start_up_naming_the_variable(
    variable: str, value: str
) -> None:
    with pytest.raises(TracingSettingError) as raised:
        tracing_config(unit_settings(), {**ENDPOINT, variable: value})
    assert isinstance(raised.value, SettingsError)
    assert f"{variable}={value!r}" in str(raised.value)


def test_the_resource_names_the_service_its_version_namespace_and_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    attributes = service_resource(unit_settings(ENVIRONMENT="production")).attributes
    assert attributes["service.name"] == "batch_conductor_service"
    assert attributes["service.version"] == service_version()
    assert attributes["service.namespace"] == "huleedu"
    assert attributes["deployment.environment"] == "production"
    assert attributes["telemetry.sdk.name"] == "opentelemetry"


def test_the_operators_otel_service_name_and_resource_attributes_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "bcs-canary")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging,team=core")
    attributes = service_resource(unit_settings(ENVIRONMENT="production")).attributes
    assert attributes["service.name"] == "bcs-canary"
    assert attributes["deployment.environment"] == "staging"
    assert attributes["team"] == "core"
    assert attributes["service.namespace"] == "huleedu"


class HeldExporter(SpanExporter):
    """Holds the export thread until released: a collector that does not answer."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.exported: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(30)
        self.exported.extend(span.name for span in spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_spans_beyond_the_queue_are_dropped_and_counted_while_the_export_is_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The worker takes the queue whole when it fills, and not before.
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
    registry = CollectorRegistry()
    exporter = HeldExporter()
    tracing = Tracing(TracingConfig("http/protobuf", 2, 2, None), exporter=exporter)
    tracing.start(BcsMetrics(registry))
    assert tracing.tracer is not None
    try:
        for name in ("first", "second"):
            tracing.tracer.start_span(name).end()
        # The worker took both and is held in the export; the queue is empty again.
        assert exporter.entered.wait(30)
        for at in range(8):  # ending a span never waits for the collector
            tracing.tracer.start_span(f"later-{at}").end()
        assert sample(registry, "bcs_trace_spans_dropped_total", reason="queue_full") == 6
    finally:
        exporter.release.set()
        await tracing.stop()
    assert exporter.exported == ["first", "second", "later-0", "later-1"]
    assert sample(registry, "bcs_trace_spans_exported_total") == 4


async def test_spans_the_collector_cannot_take_are_counted_as_export_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The real OTLP/HTTP exporter, towards a port nobody listens on.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    registry = CollectorRegistry()
    tracing = Tracing(TracingConfig("http/protobuf", 16, 16, None))
    tracing.start(BcsMetrics(registry))
    assert tracing.tracer is not None
    assert tracing.provider is not None
    try:
        for name in ("a", "b", "c"):
            tracing.tracer.start_span(name).end()
        tracing.provider.force_flush()
        assert sample(registry, "bcs_trace_spans_dropped_total", reason="export_failed") == 3
        assert sample(registry, "bcs_trace_spans_exported_total") == 0
    finally:
        await tracing.stop()
