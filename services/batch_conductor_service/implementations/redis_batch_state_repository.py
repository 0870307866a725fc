"""Batch state in Redis: sets per batch under one hash tag, atomic per batch by WATCH/MULTI/EXEC.

Works alike on one Redis server and on a Redis Cluster (see redis_client)."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.exceptions import (
    AskError,
    ClusterError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    TryAgainError,
    WatchError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from batch_conductor_service.batch_state import (
    ApplyResult,
    BatchSnapshot,
    BatchStateChange,
    RosterSource,
)
from batch_conductor_service.health import ComponentHealth, HealthState
from batch_conductor_service.implementations.circuit_breaker import CircuitBreaker, CircuitState
from batch_conductor_service.implementations.guarded_store_call import guarded_store_call
from batch_conductor_service.implementations.redis_batch_keys import (
    PRESENT_MARKER,
    ROSTER_MARKER,
    BatchKeys,
    essays_by_step,
    parse_outcome_members,
)
from batch_conductor_service.implementations.redis_batch_writes import (
    queue_change_facts,
    queue_event_ids,
    queue_present_marker,
    queue_stored_batch,
    queue_ttl,
)
from batch_conductor_service.implementations.redis_client import (
    BatchStateRedis,
    cluster_outage_as_connection_error,
)
from batch_conductor_service.implementations.stored_batch import (
    StoredBatch,
    latest_per_step,
)
from batch_conductor_service.metrics import BcsMetrics
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)

STORE = "redis"
# What "Redis cannot answer now" looks like. Besides the connection failing: a replica during
# failover (READONLY), a server out of memory under `noeviction` (OOM), a cluster without a
# master for the slot (CLUSTERDOWN, MASTERDOWN: ClusterErrors), a cluster client that ran out
# of redirections while slots move (ClusterError "TTL exhausted"), a slot being migrated
# (TRYAGAIN), or a MOVED/ASK a transaction could not follow (AskError; MovedError is one). A
# server still loading its data (LOADING, BusyLoadingError) and a cluster client out of
# connections (MaxConnectionsError) are ConnectionErrors already; a cluster with no reachable
# node or an unserved slot is turned into one by cluster_outage_as_connection_error.
STORE_ERRORS = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,
    OutOfMemoryError,
    ClusterError,
    TryAgainError,
    AskError,
    OSError,
)

T = TypeVar("T")
# Loads a batch's full stored state from the durable record, for a batch Redis no longer has.
StoredBatchLoader = Callable[[str], Awaitable[StoredBatch | None]]


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
        self._attempts = atomic_attempts
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._concurrency = max_concurrent_batches
        self._health_timeout = health_timeout_seconds

    def keys(self, batch_id: str) -> BatchKeys:
        return BatchKeys(self._prefix, batch_id)

    async def get_snapshot(self, batch_id: str) -> BatchSnapshot:
        stored = await self.read_stored(batch_id)
        return BatchSnapshot.empty(batch_id) if stored is None else stored.to_snapshot()

    async def apply(self, change: BatchStateChange) -> ApplyResult:
        (result,) = await self.apply_many([change])
        return result

    async def apply_many(self, changes: Sequence[BatchStateChange]) -> list[ApplyResult]:
        return await self.apply_many_restoring(changes, None)

    async def read_stored(self, batch_id: str) -> StoredBatch | None:
        """The batch's facts in one round trip (one MULTI/EXEC, so a consistent view), or None
        when Redis does not hold it in full. Event ids are left out: reads do not need them."""
        keys = self.keys(batch_id)

        async def read() -> list[Any]:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.sismember(keys.events, PRESENT_MARKER)
                for key in (
                    keys.roster(RosterSource.REGISTERED),
                    keys.roster(RosterSource.READY),
                    keys.succeeded,
                    keys.failed,
                    keys.outcomes,
                ):
                    # Not pipe.smembers: it adds a `keys` option that redis-py 8.1's cluster
                    # transaction passes on to the SMEMBERS reply parser, which rejects it.
                    pipe.execute_command("SMEMBERS", key)
                replies: list[Any] = await pipe.execute()
                return replies

        present, registered, ready, succeeded, failed, outcomes = await self._guarded("read", read)
        if not present:
            return None
        rosters: dict[RosterSource, frozenset[str]] = {}
        for source, ids in ((RosterSource.REGISTERED, registered), (RosterSource.READY, ready)):
            # A set without the marker but with members was written before the marker existed.
            if ids:
                ids.discard(ROSTER_MARKER)
                rosters[source] = frozenset(ids)
        succeeded_by_step, bad_succeeded = essays_by_step(succeeded)
        failed_by_step, bad_failed = essays_by_step(failed)
        parsed_outcomes, bad_outcomes = parse_outcome_members(outcomes)
        for key, bad in (
            (keys.succeeded, bad_succeeded),
            (keys.failed, bad_failed),
            (keys.outcomes, bad_outcomes),
        ):
            if bad:
                self._skip_unparsed(key, bad)
        return StoredBatch(
            batch_id=batch_id,
            rosters=rosters,
            succeeded=succeeded_by_step,
            failed=failed_by_step,
            outcomes=latest_per_step(parsed_outcomes),
        )

    def _skip_unparsed(self, key: str, members: list[str]) -> None:
        # One corrupt member must not make every read of its batch fail; it is left out of the
        # answer, and reported each time until someone removes it.
        self._metrics.repository_errors.labels(STORE, "parse").inc(len(members))
        logger.warning(
            "unparsable_redis_members_skipped", key=key, count=len(members), first=repr(members[0])
        )

    async def restore(self, stored: StoredBatch) -> None:
        """Adds a stored batch's facts; a plain union, so it is safe beside concurrent writers."""
        keys = self.keys(stored.batch_id)

        async def write() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                queue_stored_batch(pipe, keys, stored)
                queue_present_marker(pipe, keys)
                queue_ttl(pipe, keys, self._ttl)
                await pipe.execute()

        await self._guarded("restore", write)

    async def apply_many_restoring(
        self, changes: Sequence[BatchStateChange], load_missing: StoredBatchLoader | None
    ) -> list[ApplyResult]:
        """`apply_many`; with `load_missing`, a batch Redis does not hold is first filled from
        it in the same transaction, so no reader ever sees such a batch half there."""
        groups: dict[str, list[int]] = {}
        for index, change in enumerate(changes):
            groups.setdefault(change.batch_id, []).append(index)
        results: list[ApplyResult | None] = [None] * len(changes)
        limit = asyncio.Semaphore(self._concurrency)

        async def apply_group(batch_id: str, indexes: list[int]) -> None:
            async with limit:
                group = [changes[i] for i in indexes]
                # Translated per group, so that apply_all below sees a cluster outage as the
                # store error it is.
                outcome = await cluster_outage_as_connection_error(
                    lambda: self._apply_group(self.keys(batch_id), group, load_missing)
                )
            for i, result in zip(indexes, outcome, strict=True):
                results[i] = result

        async def apply_all() -> None:
            done = await asyncio.gather(
                *(apply_group(b, ix) for b, ix in groups.items()), return_exceptions=True
            )
            # Every group has finished before anything is raised, so no write is left running.
            # A store outage is re-raised ahead of anything else: the caller retries on it.
            failures = [d for d in done if isinstance(d, BaseException)]
            for failure in failures:
                if isinstance(failure, STORE_ERRORS):
                    raise failure
            if failures:
                raise failures[0]

        await self._guarded("apply", apply_all)
        return [r for r in results if r is not None]

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
        if self._breaker.state is not CircuitState.CLOSED:
            return {STORE: ComponentHealth(HealthState.DEGRADED, detail)}
        return {STORE: ComponentHealth(HealthState.OK, detail)}

    async def _apply_group(
        self,
        keys: BatchKeys,
        changes: list[BatchStateChange],
        load_missing: StoredBatchLoader | None,
    ) -> list[ApplyResult]:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_random_exponential(multiplier=self._backoff, max=self._max_backoff),
            retry=retry_if_exception_type(WatchError),
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            return await retrying(self._apply_group_atomically, keys, changes, load_missing)
        except WatchError:
            self._metrics.repository_fallbacks.labels("apply").inc()
            return await self._apply_group_commutatively(keys, changes, load_missing)

    def _count_retry(self, _state: RetryCallState) -> None:
        self._metrics.repository_atomic_retries.labels("apply").inc()

    async def _apply_group_atomically(
        self,
        keys: BatchKeys,
        changes: list[BatchStateChange],
        load_missing: StoredBatchLoader | None,
    ) -> list[ApplyResult]:
        async with self._client.pipeline(transaction=True) as pipe:
            # Any write to the batch adds to its events set, so watching it covers the batch.
            await pipe.watch(keys.events)
            seen = await pipe.smismember(keys.events, [PRESENT_MARKER, *_event_ids(changes)])
            stored = None
            if not seen[0] and load_missing is not None:
                stored = await load_missing(keys.batch_id)
            known = {c.event_id for c, s in zip(changes, seen[1:], strict=True) if s}
            if stored is not None:
                # What the rebuild brings was applied before, not by these changes.
                known |= stored.event_ids
            results = _dedupe(changes, known)
            pipe.multi()
            if stored is not None:
                queue_stored_batch(pipe, keys, stored)
            applied = [c for c, r in zip(changes, results, strict=True) if r is ApplyResult.APPLIED]
            for change in applied:
                queue_change_facts(pipe, keys, change)
            queue_event_ids(pipe, keys, _event_ids(applied))
            queue_present_marker(pipe, keys)
            queue_ttl(pipe, keys, self._ttl)
            await pipe.execute()
        return results

    async def _apply_group_commutatively(
        self,
        keys: BatchKeys,
        changes: list[BatchStateChange],
        load_missing: StoredBatchLoader | None,
    ) -> list[ApplyResult]:
        """Single-command set additions, in an order that keeps every prefix of them safe:
        facts before the event id that marks them done, everything before the present marker."""
        # Without the atomic read we cannot tell whether the batch is missing; adding the
        # durable record's facts again is harmless, as every write here is a union.
        stored = await load_missing(keys.batch_id) if load_missing is not None else None
        event_id_replies: list[int] = []
        async with self._client.pipeline(transaction=False) as pipe:
            if stored is not None:
                queue_stored_batch(pipe, keys, stored)
            for change in changes:
                queue_change_facts(pipe, keys, change)
                queue_event_ids(pipe, keys, [change.event_id])
                event_id_replies.append(len(pipe) - 1)
            queue_present_marker(pipe, keys)
            queue_ttl(pipe, keys, self._ttl)
            replies = await pipe.execute()
        return [
            ApplyResult.APPLIED if replies[i] else ApplyResult.DUPLICATE for i in event_id_replies
        ]

    async def _guarded(self, operation: str, run: Callable[[], Awaitable[T]]) -> T:
        return await guarded_store_call(
            self._breaker,
            STORE_ERRORS,
            self._metrics,
            operation,
            lambda: cluster_outage_as_connection_error(run),
        )


def _event_ids(changes: Sequence[BatchStateChange]) -> list[str]:
    return [change.event_id for change in changes]


def _dedupe(changes: Sequence[BatchStateChange], already_seen: set[str]) -> list[ApplyResult]:
    seen = set(already_seen)
    results = []
    for change in changes:
        if change.event_id in seen:
            results.append(ApplyResult.DUPLICATE)
        else:
            seen.add(change.event_id)
            results.append(ApplyResult.APPLIED)
    return results
