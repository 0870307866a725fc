"""Redis answers; PostgreSQL records every change first, answers when Redis cannot, and refills
Redis when a batch has expired there."""

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from batch_conductor_service.domain.batch_counts import BatchCounts
from batch_conductor_service.domain.batch_facts import BatchFacts
from batch_conductor_service.domain.batch_state import ApplyResult, BatchSnapshot, BatchStateChange
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.health import ComponentHealth, HealthState
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.postgres.record import PostgresBatchRecord
from batch_conductor_service.stores.redis.repository import (
    RedisBatchStateRepository,
)
from batch_conductor_service.stores.side_by_side import all_finished
from huleedu_service_libs.log_bounds import clip_id
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)
T = TypeVar("T")
APPLIED = ApplyResult.APPLIED
# Beyond this many ids pending (Redis down a long time), they are forgotten: only counts suffer.
_MAX_PENDING = 100_000


class DurableBatchStateRepository:
    # The name /healthz shows if this repository as a whole does not answer in time.
    health_name = "repository"

    def __init__(
        self,
        redis: RedisBatchStateRepository,
        record: PostgresBatchRecord,
        metrics: BcsMetrics,
        *,
        check_reads: bool = True,
    ) -> None:
        self._check_reads = check_reads
        self._redis = redis
        self._record = record
        self._metrics = metrics
        # (batch id, event id) the record took but Redis has not yet: a retry counts them.
        self._pending: set[tuple[str, str]] = set()

    async def get_snapshot(self, batch_id: str) -> BatchSnapshot:
        try:
            in_redis, behind = await self._versioned(
                self._redis.read_stored_versioned(batch_id), batch_id
            )
        except StateStoreUnavailableError as redis_down:
            self._read_falls_back(batch_id, redis_down)
            recorded = await self._record.load(batch_id, with_event_ids=False)
            return BatchSnapshot.empty(batch_id) if recorded is None else recorded.to_snapshot()
        if in_redis is not None and not behind:
            return in_redis.to_snapshot()
        recorded = await self._rebuild(batch_id)
        return BatchSnapshot.empty(batch_id) if recorded is None else recorded.to_snapshot()

    async def get_counts(self, batch_id: str) -> BatchCounts:
        try:
            in_redis, behind = await self._versioned(
                self._redis.read_counts_versioned(batch_id), batch_id
            )
        except StateStoreUnavailableError as redis_down:
            self._read_falls_back(batch_id, redis_down)
            recorded = await self._record.load_counts(batch_id)
            return BatchCounts(batch_id=batch_id) if recorded is None else recorded
        if in_redis is not None and not behind:
            return in_redis
        recorded_facts = await self._rebuild(batch_id)
        if recorded_facts is None:
            return BatchCounts(batch_id=batch_id)
        return BatchCounts.of(recorded_facts.to_snapshot())

    async def _versioned(
        self, redis_read: Awaitable[tuple[T, int]], batch_id: str
    ) -> tuple[T, bool]:
        """Redis's answer, and whether Redis is behind the record: it holds fewer of the
        batch's event ids (a failover lost its last writes, or a write is under way, PostgreSQL
        being written first). Both are asked at once, so the check costs no extra wait; if the
        record cannot answer, Redis's answer stands."""
        if not self._check_reads:
            value, _ = await redis_read
            return value, False
        redis_result, record_result = await asyncio.gather(
            redis_read, self._record.event_count(batch_id), return_exceptions=True
        )
        if isinstance(redis_result, BaseException):
            raise redis_result
        value, in_redis = redis_result
        if isinstance(record_result, StateStoreUnavailableError):
            return value, False
        if isinstance(record_result, BaseException):
            raise record_result
        behind = value is not None and record_result > in_redis
        if behind:
            self._metrics.repository_errors.labels("redis", "behind_record").inc()
            logger.warning(
                "redis_behind_record",
                batch_id=clip_id(batch_id),
                in_redis=in_redis,
                recorded=record_result,
            )
        return value, behind

    def _read_falls_back(self, batch_id: str, redis_down: StateStoreUnavailableError) -> None:
        # The record holds every change that Redis holds (it is written first), so it can
        # answer alone; if it cannot either, the caller must not guess.
        self._metrics.repository_read_fallbacks.inc()
        logger.warning(
            "snapshot_read_from_postgresql", batch_id=clip_id(batch_id), reason=str(redis_down)
        )

    async def _rebuild(self, batch_id: str) -> BatchFacts | None:
        """For a batch unknown to Redis: never seen, or expired there. Only the record can
        tell which; what it holds is put back into Redis for the next read."""
        recorded = await self._record.load(batch_id)
        if recorded is None:
            return None
        try:
            await self._redis.restore(recorded)
            self._metrics.state_rebuilds.inc()
        except StateStoreUnavailableError as exc:
            # The answer is complete without Redis; the next read or write refills it.
            logger.warning("state_rebuild_failed", batch_id=clip_id(batch_id), reason=str(exc))
        return recorded

    async def apply(self, change: BatchStateChange) -> ApplyResult:
        (result,) = await self.apply_many([change])
        return result

    async def apply_many(self, changes: Sequence[BatchStateChange]) -> list[ApplyResult]:
        # Redis is given every change, even one the record already has: it may have been
        # recorded just before Redis failed or the process crashed.
        #
        # Whether a change counts as applied is the record's word: its insert of the event id
        # is atomic across replicas, so two replicas handling one event at once count it once
        # (Redis's word would not do: one replica may win the record, the other Redis, or a
        # rebuild from the record may bring the id into Redis first). An id the record took in
        # a call that then failed is remembered here, so the retry counts it; only a crash
        # between the two stores leaves an event counted as a duplicate.
        recorded = await self._record.record_many(changes)
        taken = [
            (c.batch_id, c.event_id)
            for c, r in zip(changes, recorded.results, strict=True)
            if r is APPLIED
        ]
        if len(self._pending) + len(taken) > _MAX_PENDING:
            self._pending.clear()
        self._pending.update(taken)
        # A batch the record saw first just now holds, in the record, these changes and no
        # more: Redis takes them as they are. Any other batch Redis must hold in full first.
        first = [c for c in changes if c.batch_id in recorded.first_recorded]
        known = [c for c in changes if c.batch_id not in recorded.first_recorded]
        _, in_redis = await all_finished(
            self._redis.apply_many(first) if first else _nothing(),
            self._redis.apply_many_to_held(known) if known else _nothing(),
            outages=(StateStoreUnavailableError,),
        )
        # A batch Redis does not hold (expired there) is rebuilt whole from the record, which
        # by now holds these changes too, event ids included: a late redelivery of an event
        # applied before the expiry still reads as a duplicate.
        missing: dict[str, list[BatchStateChange]] = {}
        for change, result in zip(known, in_redis, strict=True):
            if result is None:
                missing.setdefault(change.batch_id, []).append(change)
        await all_finished(
            *(self._rebuild_for_write(b, batch_changes) for b, batch_changes in missing.items()),
            outages=(StateStoreUnavailableError,),
        )
        results: list[ApplyResult] = []
        for change in changes:
            key = (change.batch_id, change.event_id)
            results.append(APPLIED if key in self._pending else ApplyResult.DUPLICATE)
            self._pending.discard(key)
        return results

    async def _rebuild_for_write(self, batch_id: str, changes: list[BatchStateChange]) -> None:
        recorded = await self._record.load(batch_id)
        if recorded is None:
            # Not recorded after all (a record emptied by hand): Redis takes the changes alone.
            await self._redis.apply_many(changes)
            return
        await self._redis.restore(recorded)

    async def health(self) -> dict[str, ComponentHealth]:
        # Side by side: each check has its own timeout, and one after the other they could
        # outlast the time /healthz gives this whole repository.
        redis_checks, record_checks = await asyncio.gather(
            self._redis.health(), self._record.health()
        )
        checks = {**redis_checks, **record_checks}
        healthy = [name for name, check in checks.items() if check.state is HealthState.OK]
        if healthy:
            # One store up still answers reads (Redis, or PostgreSQL in its place); writes wait
            # for both, so the service is degraded, not down.
            checks = {
                name: ComponentHealth(HealthState.DEGRADED, {**check.detail, "unhealthy": True})
                if check.state is HealthState.UNHEALTHY
                else check
                for name, check in checks.items()
            }
        return checks


async def _nothing() -> list[ApplyResult | None]:
    return []
