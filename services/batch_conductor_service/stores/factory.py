"""How the production stores' clients and parts are made from the settings. Opening and closing
them is the DI container's (wiring/store_providers.py)."""

import asyncio

import asyncpg
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException

from batch_conductor_service.errors import StartupError
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.circuit_breaker import CircuitBreaker, CircuitState
from batch_conductor_service.stores.postgres.record import PostgresBatchRecord
from batch_conductor_service.stores.postgres.schema import ensure_schema
from batch_conductor_service.stores.redis.client import BatchStateRedis
from batch_conductor_service.stores.redis.cluster import WaitingRedisCluster
from batch_conductor_service.stores.redis.packing import HiredisPackingConnection
from batch_conductor_service.stores.redis.repository import (
    RedisBatchStateRepository,
)
from batch_conductor_service.wiring.settings import Settings
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)


def make_breaker(store: str, settings: Settings, metrics: BcsMetrics) -> CircuitBreaker:
    gauge = metrics.circuit_state.labels(store)
    gauge.set(0)

    def report(state: CircuitState) -> None:
        # Half-open still fails fast for all but the one probe.
        gauge.set(0 if state is CircuitState.CLOSED else 1)
        logger.warning("circuit_breaker_state_changed", store=store, state=state.value)

    return CircuitBreaker(
        store,
        settings.CIRCUIT_FAILURE_THRESHOLD,
        settings.CIRCUIT_RESET_SECONDS,
        on_state_change=report,
    )


def apply_concurrency(settings: Settings) -> int:
    """Batches written at once by one apply_many. Half the Redis pool at most, so a backlog
    being ingested never starves /define of connections; and no more than the PostgreSQL pool,
    since a batch rebuilt from PostgreSQL holds one of its connections while it is written."""
    limits = [16, max(1, settings.REDIS_MAX_CONNECTIONS // 2)]
    if settings.DATABASE_URL is not None:
        limits.append(settings.DATABASE_POOL_MAX_SIZE)
    return min(limits)


def make_redis_client(settings: Settings) -> BatchStateRedis:
    if settings.REDIS_CLUSTER:
        return WaitingRedisCluster(
            make_redis_cluster_client(settings),
            settings.REDIS_MAX_CONNECTIONS,
            settings.REDIS_TIMEOUT_SECONDS,
        )
    pool = BlockingConnectionPool.from_url(
        settings.REDIS_URL,
        max_connections=settings.REDIS_MAX_CONNECTIONS,
        timeout=settings.REDIS_TIMEOUT_SECONDS,
        socket_timeout=settings.REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=settings.REDIS_TIMEOUT_SECONDS,
        decode_responses=True,
        # One immediate retry replaces a pooled connection that a Redis restart closed; more,
        # with redis-py's default backoff, would make every call wait seconds while it is down.
        retry=Retry(NoBackoff(), 1),
        # Only for redis:// URLs: from_url replaces it for rediss:// and unix:// ones.
        connection_class=HiredisPackingConnection,
    )
    return Redis.from_pool(pool)


def make_redis_cluster_client(settings: Settings) -> RedisCluster:
    """A client for the Redis Cluster that REDIS_URL names one node of. It connects on first
    use, as the single-server client does, so the service starts while the cluster is down."""
    try:
        return RedisCluster.from_url(
            settings.REDIS_URL,
            # Per node. This pool fails at once when all are in use; WaitingRedisCluster makes
            # callers wait instead.
            max_connections=settings.REDIS_MAX_CONNECTIONS,
            socket_timeout=settings.REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=settings.REDIS_TIMEOUT_SECONDS,
            decode_responses=True,
            # No retries by the client: retrying a transaction after a connection error would
            # send MULTI/EXEC again on a new connection without the WATCH, and retrying a plain
            # pipeline closes every connection of the client. A failed call goes to the
            # circuit breaker and the caller's retry instead, and the client refreshes its view
            # of the cluster before its next call.
            retry=Retry(NoBackoff(), 0),
        )
    except RedisClusterException as exc:
        # e.g. a unix:// URL or a database other than 0; the message holds no credentials.
        raise StartupError(f"BCS_REDIS_URL cannot name a Redis Cluster node: {exc}") from exc


async def close_pool(pool: asyncpg.Pool, timeout_seconds: float) -> None:
    """Closes the pool gracefully, but waits at most `timeout_seconds` for connections still in
    use (Pool.close waits for them without limit); then cuts them off."""
    try:
        await asyncio.wait_for(pool.close(), timeout_seconds)
    except TimeoutError:
        logger.warning("postgresql_pool_terminated", waited_seconds=timeout_seconds)
        pool.terminate()


async def create_postgres_pool(settings: Settings, max_size: int) -> asyncpg.Pool:
    """A pool for DATABASE_URL; StartupError naming the variable (never its value) if not."""
    if settings.DATABASE_URL is None:
        raise StartupError("BCS_DATABASE_URL is not set: there is no PostgreSQL to connect to")
    try:
        return await asyncpg.create_pool(
            settings.DATABASE_URL,
            min_size=1,
            max_size=max_size,
            timeout=settings.DATABASE_TIMEOUT_SECONDS,
            command_timeout=settings.DATABASE_TIMEOUT_SECONDS,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        # The URL may carry a password, so the message names the variable, not its value.
        raise StartupError(f"cannot connect to the PostgreSQL of BCS_DATABASE_URL: {exc}") from exc


async def open_postgres_pool(settings: Settings) -> asyncpg.Pool:
    """The record's pool, with its schema migrated."""
    pool = await create_postgres_pool(settings, settings.DATABASE_POOL_MAX_SIZE)
    try:
        async with pool.acquire() as connection:
            applied = await ensure_schema(connection, settings.DATABASE_SCHEMA)
    except BaseException:
        await close_pool(pool, settings.DATABASE_TIMEOUT_SECONDS)
        raise
    logger.info("postgresql_schema_ready", schema=settings.DATABASE_SCHEMA, migrated=applied)
    return pool


def redis_repository(
    client: BatchStateRedis, settings: Settings, metrics: BcsMetrics
) -> RedisBatchStateRepository:
    return RedisBatchStateRepository(
        client,
        ttl_seconds=settings.REDIS_TTL_SECONDS,
        metrics=metrics,
        breaker=make_breaker("redis", settings, metrics),
        key_prefix=settings.REDIS_KEY_PREFIX,
        max_concurrent_batches=apply_concurrency(settings),
    )


def postgres_record(
    pool: asyncpg.Pool, settings: Settings, metrics: BcsMetrics
) -> PostgresBatchRecord:
    return PostgresBatchRecord(
        pool,
        schema=settings.DATABASE_SCHEMA,
        metrics=metrics,
        breaker=make_breaker("postgresql", settings, metrics),
        timeout_seconds=settings.DATABASE_TIMEOUT_SECONDS,
    )
