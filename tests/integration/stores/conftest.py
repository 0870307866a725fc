"""Stores for the repository tests: the real Redis and PostgreSQL on 127.0.0.1 (each test in a
key prefix or schema of its own, removed after), fakeredis, a Redis server of the tests' own
that a test may stop and restart, and a three-master Redis Cluster of the tests' own, shared by
the session."""

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError

from batch_conductor_service.dev.embedded_broker import free_port
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.stores.durable import DurableBatchStateRepository
from batch_conductor_service.stores.guard import StoreGuard
from batch_conductor_service.stores.memory import InMemoryBatchStateRepository
from batch_conductor_service.stores.postgres import record as pg
from batch_conductor_service.stores.postgres.record import PostgresBatchRecord
from batch_conductor_service.stores.postgres.schema import ensure_schema
from batch_conductor_service.stores.redis import connection
from batch_conductor_service.stores.redis.connection import RedisClient, make_redis_client
from batch_conductor_service.stores.redis.store import RedisBatchStateRepository
from tests.conftest import service_missing
from tests.integration.stores.own_redis_cluster import OwnRedisCluster

REDIS_URL = os.environ.get("BCS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get("BCS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
TTL_SECONDS = 3600


@pytest.fixture
def metrics() -> BcsMetrics:
    return BcsMetrics(CollectorRegistry())


def redis_guard(metrics: BcsMetrics, threshold: int = 5, reset_seconds: float = 1.0) -> StoreGuard:
    return StoreGuard(
        "redis",
        connection.classify,
        metrics,
        failure_threshold=threshold,
        reset_seconds=reset_seconds,
    )


def postgres_guard(metrics: BcsMetrics) -> StoreGuard:
    return StoreGuard("postgresql", pg.classify, metrics, reset_seconds=1.0)


@pytest.fixture
def key_prefix() -> str:
    return f"bcs-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(key_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL, decode_responses=True, socket_connect_timeout=1)
    try:
        await client.ping()
    except (RedisConnectionError, OSError) as exc:
        await client.aclose()
        service_missing(f"Redis at {REDIS_URL} ({exc})")
    yield client
    # SCAN is fine here: cleaning up after a test, not serving a request. Prefixes derived
    # from this one (`<prefix>-durable`) go too: the prefix is unique to the test.
    keys = [key async for key in client.scan_iter(match=f"{key_prefix}*", count=1000)]
    if keys:
        await client.unlink(*keys)
    await client.aclose()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedisCluster]:
    binaries = OwnRedisCluster.binaries()
    if binaries is None:
        service_missing("the redis-server and redis-cli binaries")
        raise AssertionError("unreachable")
    cluster = OwnRedisCluster(*binaries, tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def redis_cluster_client(redis_cluster: OwnRedisCluster) -> AsyncIterator[RedisCluster]:
    """Made as the service makes it. Keys are left behind: each test has its own prefix, and
    the cluster lives only as long as the session."""
    client = make_redis_client(
        redis_cluster.url, cluster=True, max_connections=64, timeout_seconds=2.0
    )
    assert isinstance(client, RedisCluster)
    yield client
    await client.aclose()


@pytest.fixture
async def pg_pool() -> AsyncIterator[asyncpg.Pool]:
    try:
        pool = await asyncpg.create_pool(DATABASE_URL, min_size=1, max_size=20, timeout=2)
    except (OSError, asyncpg.PostgresError) as exc:
        service_missing(f"PostgreSQL at {DATABASE_URL} ({exc})")
    yield pool
    await pool.close()


@pytest.fixture
async def pg_schema(pg_pool: asyncpg.Pool) -> AsyncIterator[str]:
    schema = f"bcs_test_{uuid.uuid4().hex[:12]}"
    async with pg_pool.acquire() as connection:
        await ensure_schema(connection, schema)
    yield schema
    async with pg_pool.acquire() as connection:
        await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def make_redis_repository(
    client: RedisClient, metrics: BcsMetrics, key_prefix: str, **options: Any
) -> RedisBatchStateRepository:
    guard = options.pop("guard", None) or redis_guard(metrics)
    return RedisBatchStateRepository(
        client, guard, metrics, ttl_seconds=TTL_SECONDS, key_prefix=key_prefix, **options
    )


def make_record(pool: asyncpg.Pool, schema: str, metrics: BcsMetrics) -> PostgresBatchRecord:
    return PostgresBatchRecord(pool, postgres_guard(metrics), schema=schema)


@dataclass
class StoreUnderTest:
    """A repository, whether it keeps state past expiry, and how to make a batch expire."""

    repository: BatchStateRepositoryProtocol
    durable: bool
    expire: Callable[[str], Awaitable[None]]


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def redis_expiry(
    client: RedisClient, repository: RedisBatchStateRepository
) -> Callable[[str], Awaitable[None]]:
    async def expire(batch_id: str) -> None:
        # Let Redis itself expire the keys, as the TTL would, only sooner.
        keys = repository.keys(batch_id)
        for key in (keys.facts, keys.outcomes, keys.counts):
            await client.pexpire(key, 1)
        await asyncio.sleep(0.05)

    return expire


# Synchronous so that it can ask for the async store fixtures only for the kinds that need them.
@pytest.fixture(params=["memory", "fakeredis", "redis", "redis-cluster", "redis+postgresql"])
def store(request: pytest.FixtureRequest, metrics: BcsMetrics) -> StoreUnderTest:
    kind = request.param
    if kind == "memory":
        clock = ManualClock()
        memory = InMemoryBatchStateRepository(ttl_seconds=TTL_SECONDS, clock=clock)

        async def advance(_batch_id: str) -> None:
            clock.now += TTL_SECONDS + 1

        return StoreUnderTest(memory, durable=False, expire=advance)
    prefix = request.getfixturevalue("key_prefix")
    if kind == "fakeredis":
        from fakeredis import FakeAsyncRedis

        client: Redis = FakeAsyncRedis(decode_responses=True)
    elif kind == "redis-cluster":
        cluster = request.getfixturevalue("redis_cluster_client")
        redis_repository = make_redis_repository(cluster, metrics, prefix)
        return StoreUnderTest(
            redis_repository, durable=False, expire=redis_expiry(cluster, redis_repository)
        )
    else:
        client = request.getfixturevalue("redis_client")
    redis_repository = make_redis_repository(client, metrics, prefix)
    expire = redis_expiry(client, redis_repository)
    if kind != "redis+postgresql":
        return StoreUnderTest(redis_repository, durable=False, expire=expire)
    pool = request.getfixturevalue("pg_pool")
    record = make_record(pool, request.getfixturevalue("pg_schema"), metrics)
    durable = DurableBatchStateRepository(redis_repository, record, metrics)
    return StoreUnderTest(durable, durable=True, expire=expire)


class OwnRedisServer:
    """A redis-server process of the test's own, without persistence, on a free port."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self._binary = binary
        self._workdir = workdir
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=5)
            self._process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        service_missing("the redis-server binary")
        raise AssertionError("unreachable")
    server = OwnRedisServer(binary, tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def own_redis_client(own_redis: OwnRedisServer) -> AsyncIterator[Redis]:
    """For a test that changes the server itself (SCRIPT FLUSH, CONFIG SET): on the shared
    Redis that would reach the tests other workers run at the same time."""
    client = Redis.from_url(own_redis.url, decode_responses=True)
    yield client
    await client.aclose()


class CountingConnection(Connection):
    """Counts what is sent to Redis: one send is one round trip."""

    sends = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sends += 1
        await super().send_packed_command(command, check_health)


@asynccontextmanager
async def counting_redis() -> AsyncIterator[Redis]:
    """A client whose sends CountingConnection counts; connected (and greeted) before the test
    starts counting."""
    pool = ConnectionPool.from_url(
        REDIS_URL, connection_class=CountingConnection, decode_responses=True
    )
    client = Redis.from_pool(pool)
    try:
        await client.ping()
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def rival_writes_before_every_exec(
    monkeypatch: pytest.MonkeyPatch, facts_key: str
) -> AsyncIterator[None]:
    """Another writer touches the watched key between WATCH and EXEC, every time."""
    interloper = Redis.from_url(REDIS_URL, decode_responses=True)
    original_execute = Pipeline.execute

    async def execute_after_a_rival_write(self: Pipeline, raise_on_error: bool = True) -> Any:
        if self.watching:
            await interloper.hset(facts_key, f"rival-{uuid.uuid4()}", "")
        return await original_execute(self, raise_on_error)

    monkeypatch.setattr(Pipeline, "execute", execute_after_a_rival_write)
    try:
        yield
    finally:
        await interloper.aclose()
