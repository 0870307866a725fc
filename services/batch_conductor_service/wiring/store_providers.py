"""The state store the settings select, with the clients it needs: each client is made by a
generator provider that closes it again, so closing the container is the one way they close."""

from collections.abc import AsyncIterator

import asyncpg
from dishka import Provider, Scope, provide

from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import (
    BatchStateRepositoryProtocol,
    EssayPlacementProtocol,
)
from batch_conductor_service.stores.durable import DurableBatchStateRepository
from batch_conductor_service.stores.factory import (
    close_pool,
    make_redis_client,
    open_postgres_pool,
    postgres_record,
    redis_repository,
)
from batch_conductor_service.stores.memory import InMemoryBatchStateRepository
from batch_conductor_service.stores.placement.factory import (
    open_placement_pool,
    postgres_placement,
    redis_placement,
)
from batch_conductor_service.stores.placement.memory import InMemoryEssayPlacement
from batch_conductor_service.stores.postgres.record import PostgresBatchRecord
from batch_conductor_service.stores.redis.client import BatchStateRedis
from batch_conductor_service.stores.redis.repository import RedisBatchStateRepository
from batch_conductor_service.wiring.settings import Settings


class MemoryStoreProvider(Provider):
    scope = Scope.APP

    @provide
    def repository(self, settings: Settings) -> BatchStateRepositoryProtocol:
        return InMemoryBatchStateRepository(
            ttl_seconds=settings.REDIS_TTL_SECONDS, max_batches=settings.MEMORY_MAX_BATCHES
        )

    @provide
    def placement(self, settings: Settings) -> EssayPlacementProtocol:
        return InMemoryEssayPlacement(ttl_seconds=settings.REDIS_TTL_SECONDS)


class RedisStoreProvider(Provider):
    scope = Scope.APP

    @provide
    async def client(self, settings: Settings) -> AsyncIterator[BatchStateRedis]:
        client = make_redis_client(settings)
        yield client
        await client.aclose()

    @provide
    async def redis(
        self, client: BatchStateRedis, settings: Settings, metrics: BcsMetrics
    ) -> RedisBatchStateRepository:
        repository = redis_repository(client, settings, metrics)
        await repository.check_eviction_policy()
        return repository


class RedisOnlyProvider(Provider):
    scope = Scope.APP

    @provide
    def repository(self, redis: RedisBatchStateRepository) -> BatchStateRepositoryProtocol:
        return redis

    @provide
    async def placement(
        self, settings: Settings, metrics: BcsMetrics
    ) -> AsyncIterator[EssayPlacementProtocol]:
        # A client of its own, apart from the one batch state is written with.
        client = make_redis_client(settings)
        yield redis_placement(client, settings, metrics)
        await client.aclose()


class DurableStoreProvider(Provider):
    """Redis in front of the PostgreSQL record (DATABASE_URL set)."""

    scope = Scope.APP

    @provide
    async def pool(self, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
        pool = await open_postgres_pool(settings)
        yield pool
        await close_pool(pool, settings.DATABASE_TIMEOUT_SECONDS)

    @provide
    def record(
        self, pool: asyncpg.Pool, settings: Settings, metrics: BcsMetrics
    ) -> PostgresBatchRecord:
        return postgres_record(pool, settings, metrics)

    @provide
    def repository(
        self,
        redis: RedisBatchStateRepository,
        record: PostgresBatchRecord,
        metrics: BcsMetrics,
        settings: Settings,
    ) -> BatchStateRepositoryProtocol:
        return DurableBatchStateRepository(
            redis, record, metrics, check_reads=settings.VERIFY_READS_WITH_RECORD
        )

    @provide
    async def placement(
        self,
        settings: Settings,
        metrics: BcsMetrics,
        # Opened after the record, whose start-up runs the migrations that create its tables.
        record: PostgresBatchRecord,
    ) -> AsyncIterator[EssayPlacementProtocol]:
        pool = await open_placement_pool(settings)
        yield postgres_placement(pool, settings, metrics)
        await close_pool(pool, settings.DATABASE_TIMEOUT_SECONDS)


def store_providers(settings: Settings) -> list[Provider]:
    if settings.uses_memory_repository:
        return [MemoryStoreProvider()]
    if settings.DATABASE_URL is None:
        return [RedisStoreProvider(), RedisOnlyProvider()]
    return [RedisStoreProvider(), DurableStoreProvider()]
