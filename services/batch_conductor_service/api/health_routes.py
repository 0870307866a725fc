"""Probes and the scrape: /healthz (every dependency, for an operator), /livez (whether a
restart would help, for the orchestrator's liveness probe), /readyz (whether /define can be
answered, for its readiness probe), /metrics."""

from dishka import FromDishka
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from quart import Blueprint, Response
from quart_dishka import inject

from batch_conductor_service.api.responses import json_response
from batch_conductor_service.consumer.health import ConsumerHealth, ConsumerPhase
from batch_conductor_service.health import (
    ComponentHealth,
    HealthReporters,
    HealthState,
    Serving,
    overall,
)
from batch_conductor_service.protocols import BatchStateRepositoryProtocol

health_bp = Blueprint("health", __name__)


@health_bp.get("/healthz")
@inject
async def healthz(reporters: FromDishka[HealthReporters]) -> Response:
    return _report(await reporters.collect())


@health_bp.get("/livez")
@inject
async def livez(consumer: FromDishka[ConsumerHealth]) -> Response:
    # Answering at all shows the process and its event loop work. No dependency is asked: a
    # Redis or Kafka outage would only have every replica restarted into the same outage. A
    # consumer task that died, though, comes back only with a restart.
    if consumer.phase is ConsumerPhase.DEAD:
        return _report(await consumer.health())
    return json_response(200, {"status": "ok", "checks": {}})


@health_bp.get("/readyz")
@inject
async def readyz(
    repository: FromDishka[BatchStateRepositoryProtocol], serving: FromDishka[Serving]
) -> Response:
    # Shutting down: not ready, whatever the stores say (requests in flight still finish).
    if serving.shutting_down:
        return _report({"serving": ComponentHealth(HealthState.UNHEALTHY, {"state": "stopping"})})
    # /define needs the batch state read, nothing else: ready unless no store can be read
    # (degraded, as with Redis down and PostgreSQL answering, is ready).
    return _report(await HealthReporters(repository).collect())


@health_bp.get("/metrics")
@inject
async def metrics(registry: FromDishka[CollectorRegistry]) -> Response:
    return Response(generate_latest(registry), status=200, content_type=CONTENT_TYPE_LATEST)


def _report(checks: dict[str, ComponentHealth]) -> Response:
    status = overall([check.state for check in checks.values()])
    body = {"status": status.value, "checks": {n: c.as_json() for n, c in checks.items()}}
    return json_response(503 if status is HealthState.UNHEALTHY else 200, body)
