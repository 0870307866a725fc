"""In-memory batch state: the development repository and the tests' fake, with real semantics.

Bounded: every write sweeps the batches that have expired, and beyond `max_batches` the batch
nearest its expiry is dropped, as Redis would evict it under `volatile-ttl`. Every write gives
its batch the same TTL, so the OrderedDict's order (a batch moves to the end when written) is the
order of expiry, and both cost O(1) per write.
"""

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from batch_conductor_service.domain.batch_counts import BatchCounts
from batch_conductor_service.domain.batch_facts import BatchFactsBuilder
from batch_conductor_service.domain.batch_state import ApplyResult, BatchSnapshot, BatchStateChange
from batch_conductor_service.health import ComponentHealth, HealthState


@dataclass
class _BatchRecord:
    expires_at: float
    facts: BatchFactsBuilder


class InMemoryBatchStateRepository:
    """One lock serialises writers, as WATCH/MULTI/EXEC does per batch in Redis."""

    health_name = "repository"

    def __init__(
        self,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_batches: int = 100_000,
    ) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._max_batches = max_batches
        # Oldest write first: the first entries are the ones to expire (or evict) first.
        self._batches: OrderedDict[str, _BatchRecord] = OrderedDict()
        self._evicted = 0
        self._lock = asyncio.Lock()

    async def get_snapshot(self, batch_id: str) -> BatchSnapshot:
        async with self._lock:
            record = self._live(batch_id)
            if record is None:
                return BatchSnapshot.empty(batch_id)
            return record.facts.build(with_event_ids=False).to_snapshot()

    async def get_counts(self, batch_id: str) -> BatchCounts:
        # Counted from the snapshot: in memory there is no round trip to save.
        return BatchCounts.of(await self.get_snapshot(batch_id))

    async def apply(self, change: BatchStateChange) -> ApplyResult:
        async with self._lock:
            return self._apply_locked(change)

    async def apply_many(self, changes: Sequence[BatchStateChange]) -> list[ApplyResult]:
        async with self._lock:
            return [self._apply_locked(change) for change in changes]

    async def health(self) -> dict[str, ComponentHealth]:
        return {
            "repository": ComponentHealth(
                HealthState.OK,
                {
                    "backend": "memory",
                    "batches": len(self._batches),
                    "max_batches": self._max_batches,
                    "evicted": self._evicted,
                },
            )
        }

    def _live(self, batch_id: str) -> _BatchRecord | None:
        record = self._batches.get(batch_id)
        if record is not None and record.expires_at <= self._clock():
            del self._batches[batch_id]
            return None
        return record

    def _sweep(self, now: float) -> None:
        while self._batches:
            batch_id = next(iter(self._batches))
            if self._batches[batch_id].expires_at > now:
                return
            del self._batches[batch_id]

    def _apply_locked(self, change: BatchStateChange) -> ApplyResult:
        now = self._clock()
        self._sweep(now)
        record = self._batches.get(change.batch_id)
        if record is None:
            record = _BatchRecord(expires_at=0.0, facts=BatchFactsBuilder(change.batch_id))
            while len(self._batches) >= self._max_batches:
                self._batches.popitem(last=False)
                self._evicted += 1
            self._batches[change.batch_id] = record
        else:
            self._batches.move_to_end(change.batch_id)
        record.expires_at = now + self._ttl
        is_new = record.facts.add_change(change)
        return ApplyResult.APPLIED if is_new else ApplyResult.DUPLICATE
