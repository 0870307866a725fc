"""The Redis repository against a real three-master Redis Cluster: batches on every master,
the WATCH retry and fallback paths, one round trip per read, and outages."""

import asyncio
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

from batch_conductor_service.dev.embedded_broker import free_port
from batch_conductor_service.domain.batch_state import ApplyResult, RosterSource
from batch_conductor_service.errors import StartupError, StateStoreUnavailableError
from batch_conductor_service.health import HealthState
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.guard import CircuitState
from batch_conductor_service.stores.memory import InMemoryBatchStateRepository
from batch_conductor_service.stores.redis.connection import make_redis_client
from batch_conductor_service.stores.redis.store import RedisBatchStateRepository
from batch_conductor_service.wiring.settings import load_settings
from common_core.enums import BatchPhaseStatus
from tests.integration.stores.builders import essays, outcome, roster, view
from tests.integration.stores.conftest import TTL_SECONDS, make_redis_repository, redis_guard
from tests.integration.stores.own_redis_cluster import OwnRedisCluster
from tests.integration.stores.test_factory import production_settings
from tests.integration.stores.test_redis import (
    assert_fifty_writers_end_exact,
    counter,
    fifty_writers,
)
from tests.support.state_store import open_state_store

OK = True
FAILED = False


def batches_on_every_master(client: RedisCluster, prefix: str) -> dict[str, str]:
    """One batch id per master, as node name -> batch id."""
    by_node: dict[str, str] = {}
    masters = {node.name for node in client.get_primaries()}
    while set(by_node) != masters:
        batch = f"batch-{uuid.uuid4().hex[:8]}"
        node = client.get_node_from_key(f"{prefix}:{{{batch}}}:facts")
        by_node.setdefault(node.name, batch)
    return by_node


async def test_batches_in_slots_of_different_masters_all_work(
    redis_cluster_client: RedisCluster, metrics: BcsMetrics, key_prefix: str
) -> None:
    await redis_cluster_client.initialize()
    repository = make_redis_repository(redis_cluster_client, metrics, key_prefix)
    reference = InMemoryBatchStateRepository(ttl_seconds=TTL_SECONDS)
    placed = batches_on_every_master(redis_cluster_client, key_prefix)
    assert len(placed) == 3
    changes = []
    for batch in placed.values():
        changes += [
            roster(batch, RosterSource.REGISTERED, "e1", "e2", "e3"),
            essays(batch, "spellcheck", OK, "e1", "e2"),
            essays(batch, "spellcheck", FAILED, "e3"),
            outcome(batch, "spellcheck", BatchPhaseStatus.COMPLETED_WITH_FAILURES, 1),
        ]
    # One call spanning all three masters: each batch's transaction goes to its own.
    results = await repository.apply(changes)
    assert results == [ApplyResult.APPLIED] * len(changes)
    await reference.apply(changes)
    for node_name, batch in placed.items():
        assert view(await repository.counts(batch)) == view(await reference.counts(batch))
        # Every key of the batch is on the master that owns its hash tag's slot.
        host, port = node_name.rsplit(":", 1)
        owner = Redis(host=host, port=int(port), decode_responses=True)
        try:
            keys = repository.keys(batch)
            for key in (keys.facts, keys.outcomes, keys.counts):
                assert await owner.exists(key) == 1
                assert 0 < await owner.ttl(key) <= TTL_SECONDS
        finally:
            await owner.aclose()
    assert await repository.apply(changes[:1]) == [ApplyResult.DUPLICATE]
    # Read together, as requests in flight at once: one pipeline, split by master.
    expected = [view(await reference.counts(batch)) for batch in placed.values()]
    together = await asyncio.gather(*(repository.counts(batch) for batch in placed.values()))
    assert [view(counts) for counts in together] == expected
    # Masters that forgot the script (as after a failover) are given it again.
    await redis_cluster_client.execute_command("SCRIPT FLUSH", target_nodes=RedisCluster.PRIMARIES)
    again = await asyncio.gather(*(repository.counts(batch) for batch in placed.values()))
    assert [view(counts) for counts in again] == expected


async def test_concurrent_writers_on_one_batch_end_exact_through_watch_retries(
    redis_cluster_client: RedisCluster, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_cluster_client, metrics, key_prefix)
    await assert_fifty_writers_end_exact(repository)
    assert counter(metrics, "bcs_repository_atomic_retries_total", operation="apply") > 0


async def test_the_fallback_loses_nothing_on_the_cluster(
    redis_cluster_client: RedisCluster,
    metrics: BcsMetrics,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repository = make_redis_repository(redis_cluster_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    original_watch = ClusterPipeline.watch

    async def watch_then_a_rival_write(self: ClusterPipeline, *names: Any) -> Any:
        watched = await original_watch(self, *names)
        # Another writer touches the watched key between WATCH and EXEC, every time.
        await redis_cluster_client.hset(repository.keys(batch).facts, f"rival-{uuid.uuid4()}", "")
        return watched

    monkeypatch.setattr(ClusterPipeline, "watch", watch_then_a_rival_write)
    changes = fifty_writers(batch)[:10]
    results = [(await repository.apply([change]))[0] for change in changes]
    assert results == [ApplyResult.APPLIED] * len(changes)
    assert await repository.apply(changes[:1]) == [ApplyResult.DUPLICATE]
    assert counter(metrics, "bcs_repository_fallback_writes_total", operation="apply") == 11
    reference = InMemoryBatchStateRepository(ttl_seconds=TTL_SECONDS)
    await reference.apply(changes)
    assert view(await repository.counts(batch)) == view(await reference.counts(batch))


@pytest.mark.parametrize("essay_count", [10, 10_000])
async def test_a_read_takes_one_round_trip_on_the_cluster(
    redis_cluster_client: RedisCluster,
    metrics: BcsMetrics,
    key_prefix: str,
    essay_count: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repository = make_redis_repository(redis_cluster_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    ids = [f"essay-{i}" for i in range(essay_count)]
    await repository.apply(
        [
            roster(batch, RosterSource.READY, *ids),
            essays(batch, "spellcheck", OK, *ids[: essay_count // 2]),
            essays(batch, "spellcheck", FAILED, *ids[essay_count // 2 :]),
        ]
    )
    await repository.counts(batch)  # the owning master's connection and script cache are warm
    await redis_cluster_client.delete(repository.keys(batch).counts)
    sends = 0
    original_send = Connection.send_packed_command

    async def counted_send(self: Connection, command: Any, check_health: bool = True) -> None:
        nonlocal sends
        sends += 1
        await original_send(self, command, check_health)

    # The cluster client builds its connections itself; count what any of them sends.
    monkeypatch.setattr(Connection, "send_packed_command", counted_send)
    counts = await repository.counts(batch)
    monkeypatch.undo()
    assert counts.roster_size == essay_count
    assert counts.counts_for("spellcheck").roster_failed == essay_count - essay_count // 2
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
    redis_cluster_client: RedisCluster,
    metrics: BcsMetrics,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    error: RedisError,
) -> None:
    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(ClusterPipeline, "execute", refuse)
    monkeypatch.setattr(RedisCluster, "evalsha", refuse)
    guard = redis_guard(metrics, threshold=2, reset_seconds=60)
    repository = make_redis_repository(redis_cluster_client, metrics, key_prefix, guard=guard)
    with pytest.raises(StateStoreUnavailableError, match=type(error).__name__):
        await repository.counts("b1")
    with pytest.raises(StateStoreUnavailableError, match=type(error).__name__):
        await repository.apply([essays("b1", "spellcheck", OK, "e1")])
    assert guard.state is CircuitState.OPEN


@pytest.mark.parametrize(
    "call",
    [
        lambda repository: repository.counts("b1"),
        lambda repository: repository.apply([essays("b1", "spellcheck", OK, "e1")]),
    ],
    ids=["read", "apply"],
)
async def test_a_cluster_with_no_reachable_node_is_unavailable(
    metrics: BcsMetrics, call: Callable[[RedisBatchStateRepository], Any]
) -> None:
    client = make_redis_client(
        f"redis://127.0.0.1:{free_port()}", cluster=True, max_connections=4, timeout_seconds=0.5
    )
    repository = make_redis_repository(client, metrics, "bcs")
    try:
        with pytest.raises(StateStoreUnavailableError, match="cannot be connected"):
            await call(repository)
        health = await repository.health()
    finally:
        await client.aclose()
    assert health["redis"].state is HealthState.UNHEALTHY


async def test_the_container_opens_and_closes_a_cluster_store(
    redis_cluster: OwnRedisCluster, key_prefix: str
) -> None:
    settings = load_settings(
        **production_settings(key_prefix, REDIS_URL=redis_cluster.url, REDIS_CLUSTER=True)
    )
    async with open_state_store(settings, BcsMetrics(CollectorRegistry())) as repository:
        assert isinstance(repository, RedisBatchStateRepository)
        assert (await repository.health())["redis"].state is HealthState.OK
        batch = f"batch-{uuid.uuid4().hex[:8]}"
        assert await repository.apply([essays(batch, "nlp", OK, "e1")]) == [ApplyResult.APPLIED]
        assert (await repository.counts(batch)).counts_for("nlp").succeeded == 1


def test_a_url_a_cluster_client_cannot_use_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="BCS_REDIS_URL"):
        make_redis_client(
            f"unix://{tmp_path}/redis.sock", cluster=True, max_connections=1, timeout_seconds=1
        )
