"""Batch state in Redis: sets per batch under one hash tag, atomic per batch by WATCH/MULTI/EXEC.

Works alike on one Redis server and on a Redis Cluster (see redis_client)."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from batch_conductor_service.domain.batch_counts import BatchCounts
from batch_conductor_service.domain.batch_facts import BatchFacts
from batch_conductor_service.domain.batch_state import ApplyResult, BatchSnapshot, BatchStateChange
from batch_conductor_service.health import ComponentHealth, HealthState
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.circuit_breaker import CircuitBreaker, CircuitState
from batch_conductor_service.stores.redis.apply import RedisBatchApplier
from batch_conductor_service.stores.redis.apply_together import RedisFetchApplier
from batch_conductor_service.stores.redis.client import BatchStateRedis
from batch_conductor_service.stores.redis.cluster import WaitingRedisCluster
from batch_conductor_service.stores.redis.counts import (
    LOST_REPLY,
    CountReads,
    counts_from_reply,
    event_count_of,
)
from batch_conductor_service.stores.redis.errors import (
    STORE,
    STORE_ERRORS,
    cluster_outage_as_connection_error,
    guarded_redis_call,
)
from batch_conductor_service.stores.redis.eviction import eviction_detail, read_eviction_policy
from batch_conductor_service.stores.redis.integrity import report_lost
from batch_conductor_service.stores.redis.keys import BatchKeys
from batch_conductor_service.stores.redis.reads import (
    event_count_from_sets,
    facts_from_sets,
    read_batch_sets,
    report_unparsed,
)
from batch_conductor_service.stores.redis.writes import (
    queue_event_ids,
    queue_facts,
    queue_present_marker,
    queue_ttl,
)
from batch_conductor_service.stores.side_by_side import all_finished

T = TypeVar("T")


class RedisBatchStateRepository:
    health_name = STORE

    def __init__(
        self,
        client: BatchStateRedis,
        *,
        ttl_seconds: int,
        metrics: BcsMetrics,
        breaker: CircuitBreaker,
        key_prefix: str = "bcs",
        atomic_attempts: int = 5,
        backoff_seconds: float = 0.005,
        max_backoff_seconds: float = 0.2,
        max_concurrent_batches: int = 16,
        health_timeout_seconds: float = 1.0,
    ) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._metrics = metrics
        self._breaker = breaker
        self._prefix = key_prefix
        self._concurrency = max_concurrent_batches
        self._health_timeout = health_timeout_seconds
        # Redis's maxmemory-policy; None until it could be read (eviction.py).
        self.eviction_policy: str | None = None
        self._count_reads = CountReads(client)
        # A fetch's batches in one transaction on one server; on a cluster, batch by batch.
        self._together = (
            None
            if isinstance(client, RedisCluster | WaitingRedisCluster)
            else RedisFetchApplier(client, ttl_seconds=ttl_seconds, metrics=metrics)
        )
        self._applier = RedisBatchApplier(
            client,
            ttl_seconds=ttl_seconds,
            metrics=metrics,
            atomic_attempts=atomic_attempts,
            backoff_seconds=backoff_seconds,
            max_backoff_seconds=max_backoff_seconds,
        )

    def keys(self, batch_id: str) -> BatchKeys:
        return BatchKeys(self._prefix, batch_id)

    async def get_snapshot(self, batch_id: str) -> BatchSnapshot:
        stored = await self.read_stored(batch_id)
        return BatchSnapshot.empty(batch_id) if stored is None else stored.to_snapshot()

    async def get_counts(self, batch_id: str) -> BatchCounts:
        counts = await self.read_counts(batch_id)
        return BatchCounts(batch_id=batch_id) if counts is None else counts

    async def read_counts(self, batch_id: str) -> BatchCounts | None:
        """The batch's counts in one round trip, or None when Redis does not hold it in full."""
        counts, _ = await self.read_counts_versioned(batch_id)
        return counts

    async def read_counts_versioned(self, batch_id: str) -> tuple[BatchCounts | None, int]:
        """`read_counts`, and how many event ids Redis holds for the batch (0 for none)."""
        keys = self.keys(batch_id)
        reply = await self._guarded("read", lambda: self._count_reads.read(keys))
        if reply == LOST_REPLY:
            report_lost(self._metrics, keys, [name for name, _ in keys.fact_sets])
        counts, unparsed = counts_from_reply(batch_id, reply)
        for name, count in unparsed.items():
            report_unparsed(self._metrics, getattr(keys, name), count)
        return counts, event_count_of(reply) or 0

    async def apply(self, change: BatchStateChange) -> ApplyResult:
        (result,) = await self.apply_many([change])
        return result

    async def apply_many(self, changes: Sequence[BatchStateChange]) -> list[ApplyResult]:
        results = await self._apply_groups(changes, only_if_held=False)
        return [r for r in results if r is not None]

    async def apply_many_to_held(
        self, changes: Sequence[BatchStateChange]
    ) -> list[ApplyResult | None]:
        """`apply_many` for the batches Redis holds in full; for a change of any other batch
        nothing is written and None returned, so its caller can `restore` that batch from
        elsewhere first and no reader ever sees it half there."""
        return await self._apply_groups(changes, only_if_held=True)

    async def read_stored(self, batch_id: str) -> BatchFacts | None:
        """The batch's facts, or None when Redis does not hold it in full."""
        facts, _ = await self.read_stored_versioned(batch_id)
        return facts

    async def read_stored_versioned(self, batch_id: str) -> tuple[BatchFacts | None, int]:
        """`read_stored`, and how many event ids Redis holds for the batch."""
        keys = self.keys(batch_id)
        replies = await self._guarded("read", lambda: read_batch_sets(self._client, keys))
        return facts_from_sets(keys, replies, self._metrics), event_count_from_sets(replies)

    async def restore(self, stored: BatchFacts) -> None:
        """Adds a stored batch's facts; a plain union, so it is safe beside concurrent writers."""
        keys = self.keys(stored.batch_id)

        async def write() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                queue_facts(pipe, keys, stored)
                queue_event_ids(pipe, keys, stored.event_ids)
                queue_present_marker(pipe, keys)
                queue_ttl(pipe, keys, self._ttl)
                await pipe.execute()

        await self._guarded("restore", write)

    async def _apply_groups(
        self, changes: Sequence[BatchStateChange], *, only_if_held: bool
    ) -> list[ApplyResult | None]:
        groups: dict[str, list[int]] = {}
        for index, change in enumerate(changes):
            groups.setdefault(change.batch_id, []).append(index)
        results: list[ApplyResult | None] = [None] * len(changes)
        together = self._together
        # One batch: its own transaction is the same round trips with less to read.
        if together is not None and len(groups) > 1:
            groups = await self._guarded(
                "apply",
                lambda: together.apply_groups(
                    self.keys, changes, groups, results, only_if_held=only_if_held
                ),
            )
            if not groups:
                return results
        limit = asyncio.Semaphore(self._concurrency)

        async def apply_group(batch_id: str, indexes: list[int]) -> None:
            async with limit:
                group = [changes[i] for i in indexes]
                # Translated per group, so that apply_all below sees a cluster outage as the
                # store error it is.
                outcome = await cluster_outage_as_connection_error(
                    lambda: self._applier.apply_to_batch(
                        self.keys(batch_id), group, only_if_held=only_if_held
                    )
                )
            if outcome is not None:
                for i, result in zip(indexes, outcome, strict=True):
                    results[i] = result

        async def apply_all() -> None:
            await all_finished(
                *(apply_group(b, ix) for b, ix in groups.items()), outages=STORE_ERRORS
            )

        await self._guarded("apply", apply_all)
        return results

    async def health(self) -> dict[str, ComponentHealth]:
        detail: dict[str, Any] = {"circuit": self._breaker.state.value}
        try:
            await asyncio.wait_for(
                cluster_outage_as_connection_error(self._client.ping), self._health_timeout
            )
        except (*STORE_ERRORS, TimeoutError, RedisClusterException) as exc:
            # Any other RedisClusterException is a cluster that cannot be used as configured
            # (a REDIS_URL naming a server without cluster mode): unhealthy too.
            detail["error"] = f"{type(exc).__name__}: {exc}"
            return {STORE: ComponentHealth(HealthState.UNHEALTHY, detail)}
        if self.eviction_policy is None:
            self.eviction_policy = await read_eviction_policy(self._client, self._health_timeout)
        detail.update(eviction_detail(self.eviction_policy))
        if self._breaker.state is not CircuitState.CLOSED:
            return {STORE: ComponentHealth(HealthState.DEGRADED, detail)}
        return {STORE: ComponentHealth(HealthState.OK, detail)}

    async def check_eviction_policy(self) -> None:
        """Reads `maxmemory-policy` (at start-up); if Redis cannot be asked now, /healthz asks
        again later."""
        self.eviction_policy = await read_eviction_policy(self._client, self._health_timeout)

    async def _guarded(self, operation: str, run: Callable[[], Awaitable[T]]) -> T:
        return await guarded_redis_call(self._breaker, self._metrics, operation, run)
