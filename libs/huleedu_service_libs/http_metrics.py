"""The HTTP request metrics every HuleEdu service exposes, recorded from the app's request hooks."""

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from quart import Response, g, request

# Methods a label may name; any other (clients may send any token) is counted as `other`, so a
# client cannot create series at will.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
UNMATCHED_ENDPOINT = "unmatched"


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by method, route and status code.",
            ["method", "endpoint", "status_code"],
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by method and route.",
            ["method", "endpoint"],
            registry=registry,
        )

        # Label children by label values: looking one up in prometheus_client costs more than
        # the increment; the values are bounded (methods, route templates, status codes).
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    # Called from the app's own one hook each side (each Quart hook costs an await and a lookup
    # per request), not installed as hooks of their own.
    def start_timer(self) -> None:
        g.http_metrics_started = time.perf_counter()

    def record(self, response: Response) -> float | None:
        """Counts the response and times the request; returns the seconds it took (None
        without start_timer)."""
        started = g.get("http_metrics_started")
        # The route template, not the raw path, keeps label cardinality bounded.
        endpoint = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ENDPOINT
        method = request.method if request.method in KNOWN_METHODS else "other"
        status = response.status_code
        counted = self._counted.get((method, endpoint, status))
        if counted is None:
            counted = self.requests.labels(method, endpoint, str(status))
            self._counted[(method, endpoint, status)] = counted
        counted.inc()
        if started is None:
            return None
        timed = self._timed.get((method, endpoint))
        if timed is None:
            timed = self._timed[(method, endpoint)] = self.duration.labels(method, endpoint)
        seconds: float = time.perf_counter() - started
        timed.observe(seconds)
        return seconds
