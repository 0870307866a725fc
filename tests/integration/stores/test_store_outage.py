"""A Redis of the tests' own, stopped mid-test: PostgreSQL answers in its place, or the service
answers 503 at once; after the restart the state is complete again."""

import asyncio
import time
import uuid
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from batch_conductor_service.domain.batch_state import ApplyResult, RosterSource
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.stores.durable import DurableBatchStateRepository
from batch_conductor_service.stores.guard import CircuitState
from batch_conductor_service.stores.redis.connection import make_redis_client
from batch_conductor_service.wiring.app import create_app
from batch_conductor_service.wiring.providers import app_container
from batch_conductor_service.wiring.settings import Settings, load_settings
from common_core.enums import BatchPhaseStatus
from tests.integration.stores.builders import essays, outcome, roster, view
from tests.integration.stores.conftest import (
    DATABASE_URL,
    OwnRedisServer,
    make_record,
    make_redis_repository,
    redis_guard,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
OK = True


def outage_settings(redis: OwnRedisServer, **overrides: object) -> Settings:
    return load_settings(
        ENVIRONMENT="development",
        USE_MOCK_REPOSITORY=False,
        KAFKA_CONSUMER_ENABLED=False,
        PIPELINES_PATH=REPO_ROOT / "pipelines.yaml",
        REDIS_URL=redis.url,
        REDIS_TIMEOUT_SECONDS=0.5,
        CIRCUIT_FAILURE_THRESHOLD=2,
        CIRCUIT_RESET_SECONDS=0.3,
        **overrides,
    )


def counter(metrics: BcsMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_reads_come_from_postgresql_while_redis_is_down_and_nothing_is_lost(
    own_redis: OwnRedisServer, pg_pool: asyncpg.Pool, pg_schema: str, metrics: BcsMetrics
) -> None:
    client = make_redis_client(own_redis.url, cluster=False, max_connections=8, timeout_seconds=0.5)
    redis_breaker = redis_guard(metrics, threshold=2, reset_seconds=0.3)
    redis_repository = make_redis_repository(client, metrics, "bcs", guard=redis_breaker)
    repository = DurableBatchStateRepository(
        redis_repository, make_record(pg_pool, pg_schema, metrics), metrics
    )
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    try:
        await repository.apply(
            [
                roster(batch, RosterSource.READY, "e1", "e2", "e3"),
                essays(batch, "spellcheck", OK, "e1", "e2"),
                outcome(batch, "nlp", BatchPhaseStatus.FAILED_CRITICALLY, 1),
            ]
        )
        before = view(await repository.counts(batch))

        own_redis.stop()
        assert view(await repository.counts(batch)) == before
        assert counter(metrics, "bcs_repository_read_fallbacks_total") == 1
        late = essays(batch, "spellcheck", OK, "e3")
        # Recorded in PostgreSQL, but not yet in Redis: the consumer must retry, not commit.
        with pytest.raises(StateStoreUnavailableError):
            await repository.apply([late])
        with pytest.raises(StateStoreUnavailableError):
            await repository.apply([late])
        assert redis_breaker.state is CircuitState.OPEN
        started = time.perf_counter()
        with pytest.raises(StateStoreUnavailableError, match="circuit breaker open"):
            await repository.apply([late])
        print(
            f"apply with the circuit open failed in {1000 * (time.perf_counter() - started):.2f} ms"
        )
        health = await repository.health()
        assert health["redis"].detail["circuit"] == "open"

        own_redis.start()  # empty: no persistence
        await asyncio.sleep(0.35)
        after = await repository.counts(batch)
        assert after.counts_for("spellcheck").succeeded == 3
        assert view(after)["latest"] == before["latest"]
        assert counter(metrics, "bcs_state_rebuilds_total") == 1
        # Every earlier try of `late` failed, so none was counted: this retry counts it, once.
        assert await repository.apply([late]) == [ApplyResult.APPLIED]
        assert await repository.apply([late]) == [ApplyResult.DUPLICATE]
        assert redis_breaker.state is CircuitState.CLOSED
        # Rebuilt in Redis: the next read does not touch PostgreSQL.
        assert view(await repository.counts(batch)) == view(after)
        assert counter(metrics, "bcs_state_rebuilds_total") == 1
    finally:
        await client.aclose()


async def define(client: object, batch: str) -> tuple[int, dict[str, object], dict[str, str]]:
    response = await client.post(  # type: ignore[attr-defined]
        "/internal/v1/pipelines/define", json={"batch_id": batch, "requested_pipeline": "nlp"}
    )
    return (
        response.status_code,
        await response.get_json(),
        {k.lower(): v for k, v in response.headers.items()},
    )


async def seed(app: object, batch: str) -> None:
    repository = await app_container(app).get(BatchStateRepositoryProtocol)  # type: ignore[arg-type]
    await repository.apply(
        [outcome(batch, "spellcheck", BatchPhaseStatus.COMPLETED_SUCCESSFULLY, 1)]
    )


async def test_without_postgresql_define_answers_503_fast_while_redis_is_down(
    own_redis: OwnRedisServer,
) -> None:
    registry = CollectorRegistry()
    app = create_app(outage_settings(own_redis), registry=registry)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    async with app.test_app():
        client = app.test_client()
        await seed(app, batch)
        status, body, _ = await define(client, batch)
        assert (status, body["final_pipeline"]) == (200, ["nlp"])

        own_redis.stop()
        for _ in range(2):
            status, body, headers = await define(client, batch)
            assert status == 503
            assert body["error"] == "state_store_unavailable"
            assert int(headers["retry-after"]) >= 1
        started = time.perf_counter()
        status, _, headers = await define(client, batch)
        elapsed_ms = 1000 * (time.perf_counter() - started)
        print(f"/define with the circuit open answered {status} in {elapsed_ms:.2f} ms")
        assert status == 503
        assert registry.get_sample_value("bcs_circuit_breaker_open", {"store": "redis"}) == 1
        health = await (await client.get("/healthz")).get_json()
        assert health["status"] == "unhealthy", health
        assert health["checks"]["redis"]["circuit"] == "open"

        own_redis.start()
        await asyncio.sleep(0.35)
        status, _, _ = await define(client, batch)
        assert status == 200
        assert registry.get_sample_value("bcs_circuit_breaker_open", {"store": "redis"}) == 0


async def test_define_answers_503_while_redis_is_out_of_memory(
    own_redis: OwnRedisServer,
) -> None:
    registry = CollectorRegistry()
    app = create_app(outage_settings(own_redis), registry=registry)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    admin = Redis.from_url(own_redis.url)
    async with app.test_app():
        client = app.test_client()
        await seed(app, batch)
        try:
            # Under the default `noeviction` policy Redis then refuses even a MULTI of reads.
            await admin.config_set("maxmemory", 1)
            status, body, _ = await define(client, batch)
            assert (status, body["error"]) == (503, "state_store_unavailable")
            errors = {"store": "redis", "operation": "read"}
            assert registry.get_sample_value("bcs_repository_errors_total", errors) == 1
        finally:
            await admin.config_set("maxmemory", 0)
            await admin.aclose()
        status, _, _ = await define(client, batch)
        assert status == 200


async def test_with_postgresql_define_keeps_answering_while_redis_is_down(
    own_redis: OwnRedisServer, pg_schema: str
) -> None:
    settings = outage_settings(own_redis, DATABASE_URL=DATABASE_URL, DATABASE_SCHEMA=pg_schema)
    app = create_app(settings, registry=CollectorRegistry())
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    async with app.test_app():
        client = app.test_client()
        await seed(app, batch)
        own_redis.stop()
        for _ in range(3):
            status, body, _ = await define(client, batch)
            assert (status, body["final_pipeline"]) == (200, ["nlp"])
        health = await (await client.get("/healthz")).get_json()
        assert health["status"] == "degraded"
        assert health["checks"]["postgresql"]["status"] == "ok"
        own_redis.start()
        await asyncio.sleep(0.35)
        status, body, _ = await define(client, batch)
        assert (status, body["final_pipeline"]) == (200, ["nlp"])
