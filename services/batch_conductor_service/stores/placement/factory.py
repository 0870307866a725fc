"""How the essay placement that matches the configured state store is made, with clients of its
own: in memory for the memory store, Redis (one server or a cluster) for Redis, PostgreSQL for
Redis + PostgreSQL, so the durable record holds the placement too. Opening and closing the
clients is the DI container's (wiring/store_providers.py)."""

import asyncpg

from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.factory import create_postgres_pool, make_breaker
from batch_conductor_service.stores.placement.postgres import PostgresEssayPlacement
from batch_conductor_service.stores.placement.redis import RedisEssayPlacement
from batch_conductor_service.stores.redis.client import BatchStateRedis
from batch_conductor_service.wiring.settings import Settings

# Placement makes at most two short statements per fetch: a few connections are plenty.
_POOL_SIZE = 4


def redis_placement(
    client: BatchStateRedis, settings: Settings, metrics: BcsMetrics
) -> RedisEssayPlacement:
    return RedisEssayPlacement(
        client,
        ttl_seconds=settings.REDIS_TTL_SECONDS,
        metrics=metrics,
        breaker=make_breaker("redis_placement", settings, metrics),
        key_prefix=settings.REDIS_KEY_PREFIX,
    )


async def open_placement_pool(settings: Settings) -> asyncpg.Pool:
    """Its tables come from the record's migrations, which must have run before it is used."""
    return await create_postgres_pool(settings, min(_POOL_SIZE, settings.DATABASE_POOL_MAX_SIZE))


def postgres_placement(
    pool: asyncpg.Pool, settings: Settings, metrics: BcsMetrics
) -> PostgresEssayPlacement:
    return PostgresEssayPlacement(
        pool,
        schema=settings.DATABASE_SCHEMA,
        metrics=metrics,
        breaker=make_breaker("postgresql_placement", settings, metrics),
        timeout_seconds=settings.DATABASE_TIMEOUT_SECONDS,
    )
