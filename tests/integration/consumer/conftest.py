"""The consumer's pipeline over each kind of store the service runs on: memory (its repository
and parking lot), Redis (its repository and lot), and Redis in front of PostgreSQL (the durable
repository, with the lot in PostgreSQL), as wiring/store_providers.py builds them. Redis and
PostgreSQL are the real ones on 127.0.0.1, each test in a key prefix or schema of its own."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import BatchStateRepositoryProtocol, EssayPlacementProtocol
from batch_conductor_service.stores.durable import DurableBatchStateRepository
from batch_conductor_service.stores.memory import (
    InMemoryBatchStateRepository,
    InMemoryEssayPlacement,
)
from batch_conductor_service.stores.postgres.parking import PostgresEssayPlacement
from batch_conductor_service.stores.redis.parking import RedisEssayPlacement

# The real Redis and PostgreSQL, as the store tests reach them.
from tests.integration.stores.conftest import (  # noqa: F401 (fixtures)
    TTL_SECONDS,
    key_prefix,
    make_record,
    make_redis_repository,
    pg_pool,
    pg_schema,
    redis_client,
    redis_guard,
)
from tests.support.pipeline_harness import ManualClock

STORE_KINDS = ["memory", "redis", "redis+postgresql"]


@dataclass
class Stores:
    """A repository and a parking lot of one kind, sharing metrics, and how to move past the
    lot's expiry (parked_ttl_seconds)."""

    kind: str
    repository: BatchStateRepositoryProtocol
    placement: EssayPlacementProtocol
    metrics: BcsMetrics
    registry: CollectorRegistry
    past_expiry: Callable[[], Awaitable[None]]


StoresFactory = Callable[..., Stores]


# Synchronous so that it asks for the Redis and PostgreSQL fixtures only for the kinds that
# need them.
@pytest.fixture(params=STORE_KINDS)
def make_stores(request: pytest.FixtureRequest) -> StoresFactory:
    kind: str = request.param
    # Resolved now, not in make(): an async fixture cannot be set up from a running test.
    needs = {
        "memory": [],
        "redis": ["redis_client", "key_prefix"],
        "redis+postgresql": ["redis_client", "key_prefix", "pg_pool", "pg_schema"],
    }[kind]
    given = {name: request.getfixturevalue(name) for name in needs}

    def make(*, max_parked: int = 10_000, parked_ttl_seconds: int = TTL_SECONDS) -> Stores:
        registry = CollectorRegistry()
        metrics = BcsMetrics(registry)
        if kind == "memory":
            clock = ManualClock()

            async def advance() -> None:
                clock.now += parked_ttl_seconds + 1

            repository = InMemoryBatchStateRepository(TTL_SECONDS, clock=clock)
            placement = InMemoryEssayPlacement(
                TTL_SECONDS, parked_ttl_seconds, max_parked, metrics, clock=clock
            )
            return Stores(kind, repository, placement, metrics, registry, advance)

        async def wait_out() -> None:
            # Redis and PostgreSQL expire by their own clocks: wait past the lot's expiry.
            await asyncio.sleep(parked_ttl_seconds + 0.2)

        client, prefix = given["redis_client"], given["key_prefix"]
        redis = make_redis_repository(client, metrics, prefix)
        if kind == "redis":
            lot: EssayPlacementProtocol = RedisEssayPlacement(
                client,
                redis_guard(metrics),
                metrics,
                ttl_seconds=TTL_SECONDS,
                parked_ttl_seconds=parked_ttl_seconds,
                max_parked=max_parked,
                key_prefix=prefix,
            )
            return Stores(kind, redis, lot, metrics, registry, wait_out)
        pool, schema = given["pg_pool"], given["pg_schema"]
        record = make_record(pool, schema, metrics)
        lot = PostgresEssayPlacement(
            pool,
            record.guard,
            metrics,
            schema=schema,
            parked_ttl_seconds=parked_ttl_seconds,
            max_parked=max_parked,
        )
        durable = DurableBatchStateRepository(redis, record, metrics)
        return Stores(kind, durable, lot, metrics, registry, wait_out)

    return make
