from dishka import FromDishka
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from quart import Blueprint, Response
from quart_dishka import inject

from batch_conductor_service.api.responses import json_response
from batch_conductor_service.health import HealthReporters, HealthState, overall

health_bp = Blueprint("health", __name__)


@health_bp.get("/healthz")
@inject
async def healthz(reporters: FromDishka[HealthReporters]) -> Response:
    checks = await reporters.collect()
    status = overall([check.state for check in checks.values()])
    body = {"status": status.value, "checks": {n: c.as_json() for n, c in checks.items()}}
    return json_response(503 if status is HealthState.UNHEALTHY else 200, body)


@health_bp.get("/metrics")
@inject
async def metrics(registry: FromDishka[CollectorRegistry]) -> Response:
    return Response(generate_latest(registry), status=200, content_type=CONTENT_TYPE_LATEST)
