"""The Redis repository against a real three-master Redis Cluster: batches on every master,
the WATCH retry and fallback paths, one round trip per snapshot, and outages."""

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.connection import Connection
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    MovedError,
    RedisError,
    TryAgainError,
)

from batch_conductor_service.domain.batch_state import ApplyResult, EssayOutcome, RosterSource
from batch_conductor_service.errors import StartupError, StateStoreUnavailableError
from batch_conductor_service.health import HealthState
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.circuit_breaker import CircuitBreaker, CircuitState
from batch_conductor_service.stores.factory import (
    make_redis_client,
    make_redis_cluster_client,
)
from batch_conductor_service.stores.memory import (
    InMemoryBatchStateRepository,
)
from batch_conductor_service.stores.redis.cluster import WaitingRedisCluster
from batch_conductor_service.stores.redis.repository import (
    RedisBatchStateRepository,
)
from batch_conductor_service.wiring.settings import load_settings
from common_core.enums import BatchPhaseStatus
from tests.integration.stores.builders import essays, outcome, roster, view
from tests.integration.stores.conftest import TTL_SECONDS, make_redis_repository
from tests.integration.stores.own_redis_cluster import OwnRedisCluster
from tests.integration.stores.test_factory import production_settings
from tests.integration.stores.test_redis import (
    assert_fifty_writers_end_exact,
    counter,
    fifty_writers,
)
from tests.support.state_store import open_state_store

OK = EssayOutcome.SUCCEEDED
FAILED = EssayOutcome.FAILED


def batches_on_every_master(client: RedisCluster, prefix: str) -> dict[str, str]:
    """One batch id per master, as node name -> batch id."""
    by_node: dict[str, str] = {}
    masters = {node.name for node in client.get_primaries()}
    while set(by_node) != masters:
        batch = f"batch-{uuid.uuid4().hex[:8]}"
        node = client.get_node_from_key(f"{prefix}:{{{batch}}}:events")
        by_node.setdefault(node.name, batch)
    return by_node


async def test_batches_in_slots_of_different_masters_all_work(
    redis_cluster_client: WaitingRedisCluster, metrics: BcsMetrics, key_prefix: str
) -> None:
    await redis_cluster_client.cluster.initialize()
    repository = make_redis_repository(redis_cluster_client, metrics, key_prefix)
    reference = InMemoryBatchStateRepository(ttl_seconds=TTL_SECONDS)
    placed = batches_on_every_master(redis_cluster_client.cluster, key_prefix)
    assert len(placed) == 3
    changes = []
    for batch in placed.values():
        changes += [
            roster(batch, RosterSource.REGISTERED, "e1", "e2", "e3"),
            essays(batch, "spellcheck", OK, "e1", "e2"),
            essays(batch, "spellcheck", FAILED, "e3"),
            outcome(batch, "spellcheck", BatchPhaseStatus.COMPLETED_WITH_FAILURES, 1),
        ]
    # One apply_many spanning all three masters: each batch's transaction goes to its own.
    results = await repository.apply_many(changes)
    assert results == [ApplyResult.APPLIED] * len(changes)
    await reference.apply_many(changes)
    for node_name, batch in placed.items():
        assert view(await repository.get_snapshot(batch)) == view(
            await reference.get_snapshot(batch)
        )
        # Every key of the batch is on the master that owns its hash tag's slot.
        host, port = node_name.rsplit(":", 1)
        owner = Redis(host=host, port=int(port), decode_responses=True)
        try:
            keys = repository.keys(batch)
            written = [keys.events, keys.succeeded, keys.failed, keys.outcomes]
            for key in [*written, keys.roster(RosterSource.REGISTERED)]:
                assert await owner.exists(key) == 1
                assert 0 < await owner.ttl(key) <= TTL_SECONDS
        finally:
            await owner.aclose()
    assert await repository.apply(changes[0]) is ApplyResult.DUPLICATE


async def test_concurrent_writers_on_one_batch_end_exact_through_watch_retries(
    redis_cluster_client: WaitingRedisCluster, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_cluster_client, metrics, key_prefix)
    await assert_fifty_writers_end_exact(repository)
    assert counter(metrics, "bcs_repository_atomic_retries_total", operation="apply") > 0


async def test_the_fallback_pipeline_loses_nothing_on_the_cluster(
    redis_cluster_client: WaitingRedisCluster,
    metrics: BcsMetrics,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repository = make_redis_repository(
        redis_cluster_client, metrics, key_prefix, backoff_seconds=0.001
    )
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    original_watch = ClusterPipeline.watch

    async def watch_then_a_rival_write(self: ClusterPipeline, *names: Any) -> Any:
        watched = await original_watch(self, *names)
        # Another writer touches the watched key between WATCH and EXEC, every time.
        await redis_cluster_client.cluster.sadd(
            repository.keys(batch).events, f"rival-{uuid.uuid4()}"
        )
        return watched

    monkeypatch.setattr(ClusterPipeline, "watch", watch_then_a_rival_write)
    changes = fifty_writers(batch)[:10]
    results = [await repository.apply(change) for change in changes]
    assert results == [ApplyResult.APPLIED] * len(changes)
    assert await repository.apply(changes[0]) is ApplyResult.DUPLICATE
    assert counter(metrics, "bcs_repository_fallback_writes_total", operation="apply") == 11
    reference = InMemoryBatchStateRepository(ttl_seconds=TTL_SECONDS)
    await reference.apply_many(changes)
    assert view(await repository.get_snapshot(batch)) == view(await reference.get_snapshot(batch))


@pytest.mark.parametrize("essay_count", [10, 10_000])
async def test_a_snapshot_takes_one_round_trip_on_the_cluster(
    redis_cluster_client: WaitingRedisCluster,
    metrics: BcsMetrics,
    key_prefix: str,
    essay_count: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repository = make_redis_repository(redis_cluster_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    ids = [f"essay-{i}" for i in range(essay_count)]
    await repository.apply_many(
        [
            roster(batch, RosterSource.READY, *ids),
            essays(batch, "spellcheck", OK, *ids[: essay_count // 2]),
            essays(batch, "spellcheck", FAILED, *ids[essay_count // 2 :]),
        ]
    )
    await repository.get_snapshot(batch)  # the owning master's connection is open from now on
    sends = 0
    original_send = Connection.send_packed_command

    async def counted_send(self: Connection, command: Any, check_health: bool = True) -> None:
        nonlocal sends
        sends += 1
        await original_send(self, command, check_health)

    # The cluster client builds its connections itself; count what any of them sends.
    monkeypatch.setattr(Connection, "send_packed_command", counted_send)
    snapshot = await repository.get_snapshot(batch)
    monkeypatch.undo()
    assert len(snapshot.roster or ()) == essay_count
    assert len(snapshot.failed_for("spellcheck")) == essay_count - essay_count // 2
    assert sends == 1


@pytest.mark.parametrize(
    "error",
    [
        ClusterDownError("CLUSTERDOWN The cluster is down"),
        TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
        ClusterError("TTL exhausted."),
        MovedError("3999 127.0.0.1:6381"),
    ],
)
async def test_cluster_errors_that_mean_unavailable_open_the_breaker(
    redis_cluster_client: WaitingRedisCluster,
    metrics: BcsMetrics,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    error: RedisError,
) -> None:
    async def refuse(self: ClusterPipeline, *args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(ClusterPipeline, "execute", refuse)
    breaker = CircuitBreaker("redis", failure_threshold=2, reset_seconds=60)
    repository = RedisBatchStateRepository(
        redis_cluster_client,
        ttl_seconds=60,
        metrics=metrics,
        breaker=breaker,
        key_prefix=key_prefix,
    )
    with pytest.raises(StateStoreUnavailableError, match=type(error).__name__):
        await repository.get_snapshot("b1")
    with pytest.raises(StateStoreUnavailableError, match=type(error).__name__):
        await repository.apply(essays("b1", "spellcheck", OK, "e1"))
    assert breaker.state is CircuitState.OPEN


@pytest.mark.parametrize(
    "call",
    [
        lambda repository: repository.get_snapshot("b1"),
        lambda repository: repository.apply(essays("b1", "spellcheck", OK, "e1")),
    ],
    ids=["read", "apply"],
)
async def test_a_cluster_with_no_reachable_node_is_unavailable(
    metrics: BcsMetrics, call: Callable[[RedisBatchStateRepository], Any]
) -> None:
    from batch_conductor_service.dev.embedded_broker import free_port

    client = make_redis_client(
        load_settings(
            REDIS_URL=f"redis://127.0.0.1:{free_port()}",
            REDIS_CLUSTER=True,
            REDIS_TIMEOUT_SECONDS=0.5,
        )
    )
    repository = make_redis_repository(client, metrics, "bcs")
    try:
        with pytest.raises(StateStoreUnavailableError, match="cannot be connected"):
            await call(repository)
        health = await repository.health()
    finally:
        await client.aclose()
    assert health["redis"].state is HealthState.UNHEALTHY


async def test_the_factory_opens_and_closes_a_cluster_store(
    redis_cluster: OwnRedisCluster, key_prefix: str
) -> None:
    settings = load_settings(
        **production_settings(key_prefix, REDIS_URL=redis_cluster.url, REDIS_CLUSTER=True)
    )
    async with open_state_store(settings, BcsMetrics(CollectorRegistry())) as repository:
        assert isinstance(repository, RedisBatchStateRepository)
        assert (await repository.health())["redis"].state is HealthState.OK
        batch = f"batch-{uuid.uuid4().hex[:8]}"
        assert await repository.apply(essays(batch, "nlp", OK, "e1")) is ApplyResult.APPLIED
        assert (await repository.get_snapshot(batch)).succeeded_for("nlp") == {"e1"}


def test_a_url_a_cluster_client_cannot_use_stops_start_up(tmp_path: Path) -> None:
    settings = load_settings(REDIS_URL=f"unix://{tmp_path}/redis.sock", REDIS_CLUSTER=True)
    with pytest.raises(StartupError, match="BCS_REDIS_URL"):
        make_redis_cluster_client(settings)


async def test_callers_wait_for_a_free_place_and_give_up_after_the_timeout(
    redis_cluster_client: WaitingRedisCluster, metrics: BcsMetrics, key_prefix: str
) -> None:
    crowded = WaitingRedisCluster(redis_cluster_client.cluster, 1, wait_seconds=0.2)
    repository = make_redis_repository(crowded, metrics, key_prefix)
    async with crowded.pipeline(transaction=False):
        # The one place is taken: a read waits for it, then reports the store unavailable.
        with pytest.raises(StateStoreUnavailableError, match="no Redis Cluster connection free"):
            await repository.get_snapshot("b1")
    assert (await repository.get_snapshot("b1")).is_empty
