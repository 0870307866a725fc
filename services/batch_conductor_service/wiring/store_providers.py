"""The stores the settings select (memory; Redis; Redis in front of the PostgreSQL record), with
the clients they need. Each client is made by a generator provider that closes it again, so
closing the container is the one way they close."""

import os
import socket
from collections.abc import AsyncIterator

import asyncpg
from dishka import Provider, Scope, provide
from redis.exceptions import RedisClusterException, RedisError

from batch_conductor_service.errors import StartupError
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import (
    BatchStateRepositoryProtocol,
    EssayPlacementProtocol,
)
from batch_conductor_service.stores.durable import DurableBatchStateRepository
from batch_conductor_service.stores.guard import StoreGuard
from batch_conductor_service.stores.memory import (
    InMemoryBatchStateRepository,
    InMemoryEssayPlacement,
)
from batch_conductor_service.stores.postgres import record as pg
from batch_conductor_service.stores.postgres.parking import PostgresEssayPlacement
from batch_conductor_service.stores.postgres.record import PostgresBatchRecord
from batch_conductor_service.stores.postgres.schema import ensure_schema
from batch_conductor_service.stores.redis import connection as redis_connection
from batch_conductor_service.stores.redis.connection import RedisClient, make_redis_client
from batch_conductor_service.stores.redis.parking import RedisEssayPlacement
from batch_conductor_service.stores.redis.store import RedisBatchStateRepository
from batch_conductor_service.wiring.settings import Settings
from huleedu_service_libs.log_bounds import clip
from huleedu_service_libs.logging_utils import get_logger
from huleedu_service_libs.redaction import redact_url

logger = get_logger(__name__)


class MemoryStoreProvider(Provider):
    scope = Scope.APP

    @provide
    def repository(self, settings: Settings) -> BatchStateRepositoryProtocol:
        return InMemoryBatchStateRepository(
            ttl_seconds=settings.REDIS_TTL_SECONDS, max_batches=settings.MEMORY_MAX_BATCHES
        )

    @provide
    def placement(self, settings: Settings, metrics: BcsMetrics) -> EssayPlacementProtocol:
        return InMemoryEssayPlacement(
            settings.REDIS_TTL_SECONDS,
            settings.PARKED_RESULT_TTL_SECONDS,
            settings.MAX_PARKED_RESULTS,
            metrics,
        )


class RedisStoreProvider(Provider):
    scope = Scope.APP

    @provide
    async def client(self, settings: Settings) -> AsyncIterator[RedisClient]:
        client = make_redis_client(
            settings.REDIS_URL,
            cluster=settings.REDIS_CLUSTER,
            max_connections=settings.REDIS_MAX_CONNECTIONS,
            timeout_seconds=settings.REDIS_TIMEOUT_SECONDS,
        )
        try:
            # Reached at start, as PostgreSQL is: a wrong URL is seen at once (docs/design.md).
            await client.ping()
        except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
            await client.aclose()
            raise cannot_reach(
                "Redis", "BCS_REDIS_URL", settings.REDIS_URL, exc, settings.REDIS_TIMEOUT_SECONDS
            ) from exc
        yield client
        await client.aclose()

    @provide
    def guard(self, client: RedisClient, settings: Settings, metrics: BcsMetrics) -> StoreGuard:
        return StoreGuard(
            "redis",
            redis_connection.classify,
            metrics,
            failure_threshold=settings.CIRCUIT_FAILURE_THRESHOLD,
            reset_seconds=settings.CIRCUIT_RESET_SECONDS,
            ping=client.ping,
        )

    @provide
    async def redis(
        self, client: RedisClient, guard: StoreGuard, settings: Settings, metrics: BcsMetrics
    ) -> RedisBatchStateRepository:
        repository = RedisBatchStateRepository(
            client,
            guard,
            metrics,
            ttl_seconds=settings.REDIS_TTL_SECONDS,
            key_prefix=settings.REDIS_KEY_PREFIX,
            # Half the pool at most, so a backlog being ingested never starves /define.
            max_concurrent_writes=max(1, min(16, settings.REDIS_MAX_CONNECTIONS // 2)),
        )
        await repository.check_eviction_policy()
        return repository


class RedisOnlyProvider(Provider):
    scope = Scope.APP

    @provide
    def repository(self, redis: RedisBatchStateRepository) -> BatchStateRepositoryProtocol:
        return redis

    @provide
    def placement(
        self, client: RedisClient, guard: StoreGuard, settings: Settings, metrics: BcsMetrics
    ) -> EssayPlacementProtocol:
        return RedisEssayPlacement(
            client,
            guard,
            metrics,
            ttl_seconds=settings.REDIS_TTL_SECONDS,
            parked_ttl_seconds=settings.PARKED_RESULT_TTL_SECONDS,
            max_parked=settings.MAX_PARKED_RESULTS,
            key_prefix=settings.REDIS_KEY_PREFIX,
        )


class DurableStoreProvider(Provider):
    """Redis in front of the PostgreSQL record (DATABASE_URL set)."""

    scope = Scope.APP

    @provide
    async def pool(self, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
        if settings.DATABASE_URL is None:
            raise StartupError("BCS_DATABASE_URL is not set: there is no PostgreSQL to connect to")
        try:
            pool = await pg.open_pool(
                settings.DATABASE_URL,
                max_size=settings.DATABASE_POOL_MAX_SIZE,
                timeout_seconds=settings.DATABASE_TIMEOUT_SECONDS,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            raise cannot_reach(
                "PostgreSQL",
                "BCS_DATABASE_URL",
                settings.DATABASE_URL,
                exc,
                settings.DATABASE_TIMEOUT_SECONDS,
            ) from exc
        try:
            async with pool.acquire() as connection:
                migrated = await ensure_schema(connection, settings.DATABASE_SCHEMA)
        except BaseException as exc:
            await pg.close_pool(pool, settings.DATABASE_TIMEOUT_SECONDS)
            if isinstance(exc, asyncpg.PostgresError):
                # e.g. no right to create the schema: the operator's to fix, not a bug.
                raise StartupError(
                    f"cannot prepare the schema {settings.DATABASE_SCHEMA!r} in PostgreSQL at "
                    f"{redact_url(settings.DATABASE_URL)} (BCS_DATABASE_SCHEMA): {clip(str(exc))}"
                ) from exc
            raise
        logger.info("postgresql_schema_ready", schema=settings.DATABASE_SCHEMA, migrated=migrated)
        yield pool
        await pg.close_pool(pool, settings.DATABASE_TIMEOUT_SECONDS)

    @provide
    def record(
        self, pool: asyncpg.Pool, settings: Settings, metrics: BcsMetrics
    ) -> PostgresBatchRecord:
        guard = StoreGuard(
            "postgresql",
            pg.classify,
            metrics,
            failure_threshold=settings.CIRCUIT_FAILURE_THRESHOLD,
            reset_seconds=settings.CIRCUIT_RESET_SECONDS,
            ping=lambda: pool.fetchval("SELECT 1"),
        )
        return PostgresBatchRecord(
            pool,
            guard,
            schema=settings.DATABASE_SCHEMA,
            timeout_seconds=settings.DATABASE_TIMEOUT_SECONDS,
        )

    @provide
    def repository(
        self,
        redis: RedisBatchStateRepository,
        record: PostgresBatchRecord,
        metrics: BcsMetrics,
        settings: Settings,
    ) -> BatchStateRepositoryProtocol:
        return DurableBatchStateRepository(
            redis, record, metrics, verify_reads=settings.VERIFY_READS_WITH_RECORD
        )

    @provide
    def placement(
        self,
        pool: asyncpg.Pool,
        record: PostgresBatchRecord,
        settings: Settings,
        metrics: BcsMetrics,
    ) -> EssayPlacementProtocol:
        return PostgresEssayPlacement(
            pool,
            record.guard,
            metrics,
            schema=settings.DATABASE_SCHEMA,
            parked_ttl_seconds=settings.PARKED_RESULT_TTL_SECONDS,
            max_parked=settings.MAX_PARKED_RESULTS,
            timeout_seconds=settings.DATABASE_TIMEOUT_SECONDS,
        )


def cannot_reach(
    store: str, variable: str, url: str, exc: BaseException, timeout_seconds: float
) -> StartupError:
    """One line naming the store, where it was looked for (no password), the setting and why."""
    return StartupError(
        f"cannot reach {store} at {redact_url(url)} ({variable}): {_cause(exc, timeout_seconds)}"
    )


def _cause(exc: BaseException, timeout_seconds: float) -> str:
    """Why, in the operating system's words when it refused (the clients' own messages wrap
    them in addresses and errno numbers), else in the client's."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror) and seen.strerror:
            return seen.strerror
        if isinstance(seen, OSError) and seen.errno is not None and seen.errno > 0:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {timeout_seconds:g} s"
    return clip(str(exc) or type(exc).__name__)


def store_providers(settings: Settings) -> list[Provider]:
    if settings.uses_memory_repository:
        return [MemoryStoreProvider()]
    if settings.DATABASE_URL is None:
        return [RedisStoreProvider(), RedisOnlyProvider()]
    return [RedisStoreProvider(), DurableStoreProvider()]
