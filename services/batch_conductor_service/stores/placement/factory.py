"""Opens the essay placement that matches the configured state store, with clients of its own.

Memory store: in memory. Redis: Redis (one server or a cluster). Redis + PostgreSQL: PostgreSQL,
so the durable record holds the placement too. Its tables come from the record's migrations,
which open_state_store has run before this is opened.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from batch_conductor_service.errors import StartupError
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import EssayPlacementProtocol
from batch_conductor_service.stores.factory import close_pool, make_breaker, make_redis_client
from batch_conductor_service.stores.placement.memory import InMemoryEssayPlacement
from batch_conductor_service.stores.placement.postgres import PostgresEssayPlacement
from batch_conductor_service.stores.placement.redis import RedisEssayPlacement
from batch_conductor_service.wiring.settings import Settings

# Placement makes at most two short statements per fetch: a few connections are plenty.
_POOL_SIZE = 4


@asynccontextmanager
async def open_placement(
    settings: Settings, metrics: BcsMetrics
) -> AsyncIterator[EssayPlacementProtocol]:
    if settings.uses_memory_repository:
        yield InMemoryEssayPlacement(ttl_seconds=settings.REDIS_TTL_SECONDS)
        return
    if settings.DATABASE_URL is None:
        client = make_redis_client(settings)
        try:
            yield RedisEssayPlacement(
                client,
                ttl_seconds=settings.REDIS_TTL_SECONDS,
                metrics=metrics,
                breaker=make_breaker("redis_placement", settings, metrics),
                key_prefix=settings.REDIS_KEY_PREFIX,
            )
        finally:
            await client.aclose()
        return
    try:
        pool = await asyncpg.create_pool(
            settings.DATABASE_URL,
            min_size=1,
            max_size=min(_POOL_SIZE, settings.DATABASE_POOL_MAX_SIZE),
            timeout=settings.DATABASE_TIMEOUT_SECONDS,
            command_timeout=settings.DATABASE_TIMEOUT_SECONDS,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise StartupError(f"cannot connect to the PostgreSQL of BCS_DATABASE_URL: {exc}") from exc
    try:
        yield PostgresEssayPlacement(
            pool,
            schema=settings.DATABASE_SCHEMA,
            metrics=metrics,
            breaker=make_breaker("postgresql_placement", settings, metrics),
            timeout_seconds=settings.DATABASE_TIMEOUT_SECONDS,
        )
    finally:
        await close_pool(pool, settings.DATABASE_TIMEOUT_SECONDS)
