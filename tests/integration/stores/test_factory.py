"""The real container picks the production store when the in-memory one is not selected."""

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.stores.durable import DurableBatchStateRepository
from batch_conductor_service.stores.redis.store import RedisBatchStateRepository
from batch_conductor_service.wiring.app import create_app
from batch_conductor_service.wiring.providers import app_container
from batch_conductor_service.wiring.settings import load_settings
from tests.integration.stores.conftest import DATABASE_URL, REDIS_URL
from tests.support.state_store import open_state_store

PIPELINES = Path(__file__).resolve().parents[3] / "pipelines.yaml"


def production_settings(key_prefix: str, **overrides: object) -> dict[str, object]:
    return {
        "ENVIRONMENT": "production",
        "USE_MOCK_REPOSITORY": False,
        "KAFKA_CONSUMER_ENABLED": False,
        "PIPELINES_PATH": PIPELINES,
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": key_prefix,
        **overrides,
    }


async def test_production_settings_select_redis(redis_client: Redis, key_prefix: str) -> None:
    app = create_app(load_settings(**production_settings(key_prefix)))
    async with app.test_app():
        repository = await app_container(app).get(BatchStateRepositoryProtocol)
        health = (await (await app.test_client().get("/healthz")).get_json())["checks"]
    assert isinstance(repository, RedisBatchStateRepository)
    assert health["redis"]["status"] == "ok"
    assert "postgresql" not in health


async def test_a_database_url_adds_the_postgresql_record(
    redis_client: Redis, key_prefix: str, pg_pool: asyncpg.Pool
) -> None:
    schema = f"bcs_sel_{key_prefix.rsplit('-', 1)[1]}"
    settings = production_settings(key_prefix, DATABASE_URL=DATABASE_URL, DATABASE_SCHEMA=schema)
    app = create_app(load_settings(**settings))
    try:
        async with app.test_app():
            repository = await app_container(app).get(BatchStateRepositoryProtocol)
            health = (await (await app.test_client().get("/healthz")).get_json())["checks"]
        assert isinstance(repository, DurableBatchStateRepository)
        assert health["postgresql"]["status"] == "ok"
    finally:
        async with pg_pool.acquire() as connection:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_closing_does_not_wait_without_limit_for_a_connection_still_in_use(
    redis_client: Redis, key_prefix: str, pg_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = f"bcs_close_{key_prefix.rsplit('-', 1)[1]}"
    pools: list[asyncpg.Pool] = []
    create_pool = asyncpg.create_pool

    async def remembered_pool(*args: Any, **kwargs: Any) -> asyncpg.Pool:
        pool = await create_pool(*args, **kwargs)
        pools.append(pool)
        return pool

    monkeypatch.setattr(asyncpg, "create_pool", remembered_pool)
    settings = load_settings(
        **production_settings(key_prefix, DATABASE_URL=DATABASE_URL, DATABASE_SCHEMA=schema),
        DATABASE_TIMEOUT_SECONDS=0.3,
    )
    try:
        backend_pid = 0
        started = 0.0

        async def open_and_close() -> None:
            nonlocal backend_pid, started
            async with open_state_store(settings, BcsMetrics(CollectorRegistry())):
                # A request or the consumer still holds a connection at shutdown.
                stuck = await pools[0].acquire()
                backend_pid = await stuck.fetchval("SELECT pg_backend_pid()")
                started = time.perf_counter()

        await asyncio.wait_for(open_and_close(), 10)
        assert time.perf_counter() - started < 2
        await asyncio.sleep(0.1)  # the server notices the closed socket
        async with pg_pool.acquire() as connection:
            alive = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", backend_pid
            )
        assert alive == 0
    finally:
        async with pg_pool.acquire() as connection:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
