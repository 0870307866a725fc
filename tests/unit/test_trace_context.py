"""huleedu_service_libs.trace_context: what a producer or caller sends as W3C trace context is
read defensively (any JSON value in the metadata, any bytes in a header): a valid traceparent
is continued, anything else ignored, and nothing raises."""

import json
import logging
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from huleedu_service_libs import logging_utils
from huleedu_service_libs.logging_utils import configure_logging, get_logger
from huleedu_service_libs.trace_context import (
    MAX_TRACEPARENT_CHARS,
    MAX_TRACESTATE_CHARS,
    NO_TRACE,
    TraceCarrier,
    as_headers,
    carrier_from_headers,
    carrier_from_metadata,
    carrier_of,
    context_from,
    normalised,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
W3C = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
texts = st.one_of(
    st.text(),
    st.just(TRACEPARENT),
    st.just(TRACEPARENT + "-x"),
    st.just(TRACEPARENT.upper()),
    st.integers(min_value=200, max_value=20_000).map(lambda n: "00-" + "f" * n),
)


def is_well_bounded(carrier: TraceCarrier) -> bool:
    limits = {"traceparent": MAX_TRACEPARENT_CHARS, "tracestate": MAX_TRACESTATE_CHARS}
    return carrier is NO_TRACE or (
        "traceparent" in carrier
        and set(carrier) <= set(limits)
        and all(
            isinstance(v, str) and v.isascii() and 0 < len(v) <= limits[k]
            for k, v in carrier.items()
        )
    )


@given(
    st.one_of(
        json_values,
        st.dictionaries(st.sampled_from(["traceparent", "tracestate", "x"]), json_values | texts),
    )
)
def test_any_metadata_gives_a_bounded_carrier_or_none_and_never_raises(metadata: Any) -> None:
    carrier = carrier_from_metadata(metadata)
    assert is_well_bounded(carrier)
    context = context_from(carrier)
    if context is not None:
        assert W3C.fullmatch(carrier_of(context)["traceparent"])


header_names = st.sampled_from(["traceparent", "TraceParent", "tracestate", "other"]) | st.text()
header_values = st.none() | st.binary(max_size=600) | texts.map(lambda t: t.encode())


@given(st.lists(st.tuples(header_names, header_values), max_size=5))
def test_any_kafka_headers_give_a_bounded_carrier_or_none_and_never_raise(
    headers: list[tuple[str, bytes | None]],
) -> None:
    carrier = carrier_from_headers(headers)
    assert is_well_bounded(carrier)
    context_from(carrier)


@given(st.dictionaries(st.sampled_from(["traceparent", "tracestate"]), texts))
def test_normalised_keeps_a_valid_context_only_as_the_propagator_writes_it(
    carrier: dict[str, str],
) -> None:
    result = normalised(carrier)
    assert result == NO_TRACE or W3C.fullmatch(result["traceparent"])
    if carrier.get("traceparent") == TRACEPARENT:
        assert result["traceparent"] == TRACEPARENT


def test_a_valid_context_is_continued_with_its_tracestate() -> None:
    carrier = {"traceparent": TRACEPARENT, "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}
    context = context_from(carrier_from_metadata({"partition_key": "b1", **carrier}))
    assert context is not None
    span_context = trace.get_current_span(context).get_span_context()
    assert f"{span_context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span_context.is_remote
    assert carrier_of(context) == carrier
    assert as_headers(carrier) == [(k, v.encode()) for k, v in carrier.items()]


def test_header_names_are_read_in_any_case_and_the_first_of_each_wins() -> None:
    other = TRACEPARENT.replace("00f067aa0ba902b7", "1111111111111111")
    headers = [("TRACEPARENT", TRACEPARENT.encode()), ("traceparent", other.encode())]
    assert carrier_from_headers(headers) == {"traceparent": TRACEPARENT}


@pytest.mark.usefixtures("restore_logging")
def test_lines_written_in_a_span_carry_its_ids_once_tracing_is_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "bcs")
    tracer = TracerProvider().get_tracer("test")
    try:
        with tracer.start_as_current_span("work") as span:
            get_logger("bcs.test").info("ours_before")
            logging_utils.include_trace_ids(True)
            get_logger("bcs.test").info("ours")
            logging.getLogger("hypercorn.error").warning("theirs")
        get_logger("bcs.test").info("outside")
    finally:
        logging_utils.include_trace_ids(False)
    ids = (f"{span.get_span_context().trace_id:032x}", f"{span.get_span_context().span_id:016x}")
    lines = {line["event"]: line for line in map(json.loads, capsys.readouterr().out.splitlines())}
    assert "trace_id" not in lines["ours_before"]
    assert (lines["ours"]["trace_id"], lines["ours"]["span_id"]) == ids
    assert (lines["theirs"]["trace_id"], lines["theirs"]["span_id"]) == ids
    assert "trace_id" not in lines["outside"]
