"""Redis answers; PostgreSQL records every change first, answers when Redis cannot, and rebuilds
in Redis a batch Redis lost (expired, evicted, or behind after a failover)."""

import asyncio
from collections.abc import Sequence

from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchChange,
    BatchCounts,
    BatchFacts,
    count,
)
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.health import ComponentHealth, HealthState
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.postgres.record import PostgresBatchRecord
from batch_conductor_service.stores.redis.layout import CountReply
from batch_conductor_service.stores.redis.store import RedisBatchStateRepository
from huleedu_service_libs.log_bounds import clip_id
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)
# Beyond this many ids pending (Redis down a long time), they are forgotten: only counts suffer.
_MAX_PENDING = 100_000


class DurableBatchStateRepository:
    health_name = "repository"

    def __init__(
        self,
        redis: RedisBatchStateRepository,
        record: PostgresBatchRecord,
        metrics: BcsMetrics,
        *,
        verify_reads: bool = True,
    ) -> None:
        self._redis = redis
        self._record = record
        self._metrics = metrics
        self._verify_reads = verify_reads
        # (batch id, event id) the record took in a call whose Redis write then failed: the
        # retry, which the record answers "duplicate", still counts them as applied.
        self._pending: set[tuple[str, str]] = set()

    async def counts(self, batch_id: str) -> BatchCounts:
        try:
            reply, recorded = await self._read(batch_id)
        except StateStoreUnavailableError as redis_down:
            # The record holds everything Redis holds (it is written first): it answers alone;
            # if it cannot either, the caller must not guess.
            self._metrics.repository_read_fallbacks.inc()
            logger.warning(
                "counts_read_from_postgresql", batch_id=clip_id(batch_id), reason=str(redis_down)
            )
            return _counts(batch_id, await self._record.load(batch_id))
        if reply.counts is not None and (recorded is None or reply.version >= recorded):
            return reply.counts
        if reply.counts is not None:
            self._metrics.repository_errors.labels("redis", "behind_record").inc()
            logger.warning(
                "redis_behind_record",
                batch_id=clip_id(batch_id),
                in_redis=reply.version,
                recorded=recorded,
            )
        return await self._rebuild(batch_id)

    async def apply(self, changes: Sequence[BatchChange]) -> list[ApplyResult]:
        recorded = await self._record.record(changes)
        taken: set[tuple[str, str]] = {
            (c.batch_id, c.event_id)
            for c, r in zip(changes, recorded.results, strict=True)
            if r is ApplyResult.APPLIED and c.event_id is not None
        }
        if len(self._pending) + len(taken) > _MAX_PENDING:
            self._pending.clear()
        self._pending |= taken
        behind = await self._redis.apply_recorded(recorded.batches)
        rebuilt = await asyncio.gather(
            *(self._rebuild(b) for b in sorted(behind)), return_exceptions=True
        )
        for failure in rebuilt:
            if isinstance(failure, BaseException):
                raise failure
        results = []
        for change, result in zip(changes, recorded.results, strict=True):
            key = (change.batch_id, change.event_id)
            if change.event_id is not None:
                result = ApplyResult.APPLIED if key in self._pending else ApplyResult.DUPLICATE
                self._pending.discard(key)
            results.append(result)
        return results

    async def health(self) -> dict[str, ComponentHealth]:
        # Side by side: each check has its own timeout, and one after the other they could
        # outlast the time /healthz gives this whole repository.
        redis_checks, record_checks = await asyncio.gather(
            self._redis.health(), self._record.health()
        )
        checks = {**redis_checks, **record_checks}
        if any(check.state is HealthState.OK for check in checks.values()):
            # One store up still answers reads (Redis, or PostgreSQL in its place); writes wait
            # for both, so the service is degraded, not down.
            checks = {
                name: ComponentHealth(HealthState.DEGRADED, {**check.detail, "unhealthy": True})
                if check.state is HealthState.UNHEALTHY
                else check
                for name, check in checks.items()
            }
        return checks

    async def _read(self, batch_id: str) -> tuple[CountReply, int | None]:
        """Redis's answer and the record's version of the batch, asked side by side; when the
        record cannot say, Redis's answer stands."""
        if not self._verify_reads:
            return await self._redis.read_counts(batch_id), None
        in_redis, recorded = await asyncio.gather(
            self._redis.read_counts(batch_id),
            self._record.version(batch_id),
            return_exceptions=True,
        )
        if isinstance(in_redis, BaseException):
            raise in_redis
        if isinstance(recorded, StateStoreUnavailableError):
            return in_redis, None
        if isinstance(recorded, BaseException):
            raise recorded
        return in_redis, recorded

    async def _rebuild(self, batch_id: str) -> BatchCounts:
        """Puts the record's facts of the batch back into Redis and answers from them."""
        loaded: list[tuple[BatchFacts, int] | None] = []

        async def load() -> tuple[BatchFacts, int] | None:
            loaded.append(await self._record.load(batch_id))
            return loaded[-1]

        try:
            await self._redis.restore(batch_id, load)
        except StateStoreUnavailableError as exc:
            # The answer is whole without Redis; the next read or write rebuilds it.
            logger.warning("state_rebuild_failed", batch_id=clip_id(batch_id), reason=str(exc))
        else:
            if loaded and loaded[-1] is not None:
                self._metrics.state_rebuilds.inc()
        return _counts(batch_id, loaded[-1] if loaded else await self._record.load(batch_id))


def _counts(batch_id: str, loaded: tuple[BatchFacts, int] | None) -> BatchCounts:
    return BatchCounts(batch_id) if loaded is None else count(loaded[0])
