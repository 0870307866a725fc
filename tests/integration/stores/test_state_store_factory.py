"""The real container picks the production store when the in-memory one is not selected."""

from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from batch_conductor_service.app import create_app
from batch_conductor_service.config import load_settings
from batch_conductor_service.di import app_container
from batch_conductor_service.implementations.durable_batch_state_repository import (
    DurableBatchStateRepository,
)
from batch_conductor_service.implementations.redis_batch_state_repository import (
    RedisBatchStateRepository,
)
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from tests.integration.stores.conftest import DATABASE_URL, REDIS_URL

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
