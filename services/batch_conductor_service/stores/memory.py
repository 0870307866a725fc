"""In-memory batch state: the development repository and the tests' fake, with real semantics."""

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from batch_conductor_service.domain.batch_facts import StoredBatch
from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchOutcome,
    BatchSnapshot,
    BatchStateChange,
    EssayOutcome,
    RosterSource,
)
from batch_conductor_service.health import ComponentHealth, HealthState


@dataclass
class _BatchRecord:
    expires_at: float
    rosters: dict[RosterSource, set[str]] = field(default_factory=dict)
    succeeded: dict[str, set[str]] = field(default_factory=dict)
    failed: dict[str, set[str]] = field(default_factory=dict)
    outcomes: dict[str, BatchOutcome] = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)

    def stored(self, batch_id: str) -> StoredBatch:
        # Event ids are left out, as Redis leaves them out of reads: no snapshot needs them.
        return StoredBatch(
            batch_id=batch_id,
            rosters={source: frozenset(ids) for source, ids in self.rosters.items()},
            succeeded={step: frozenset(ids) for step, ids in self.succeeded.items()},
            failed={step: frozenset(ids) for step, ids in self.failed.items()},
            outcomes=dict(self.outcomes),
        )


class InMemoryBatchStateRepository:
    """One lock serialises writers, as WATCH/MULTI/EXEC does per batch in Redis."""

    health_name = "repository"

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._batches: dict[str, _BatchRecord] = {}
        self._lock = asyncio.Lock()

    async def get_snapshot(self, batch_id: str) -> BatchSnapshot:
        async with self._lock:
            record = self._live(batch_id)
            if record is None:
                return BatchSnapshot.empty(batch_id)
            return record.stored(batch_id).to_snapshot()

    async def apply(self, change: BatchStateChange) -> ApplyResult:
        async with self._lock:
            return self._apply_locked(change)

    async def apply_many(self, changes: Sequence[BatchStateChange]) -> list[ApplyResult]:
        async with self._lock:
            return [self._apply_locked(change) for change in changes]

    async def health(self) -> dict[str, ComponentHealth]:
        return {
            "repository": ComponentHealth(
                HealthState.OK, {"backend": "memory", "batches": len(self._batches)}
            )
        }

    def _live(self, batch_id: str) -> _BatchRecord | None:
        record = self._batches.get(batch_id)
        if record is not None and record.expires_at <= self._clock():
            del self._batches[batch_id]
            return None
        return record

    def _apply_locked(self, change: BatchStateChange) -> ApplyResult:
        record = self._live(change.batch_id)
        if record is None:
            record = self._batches[change.batch_id] = _BatchRecord(expires_at=0.0)
        record.expires_at = self._clock() + self._ttl
        if change.event_id in record.event_ids:
            return ApplyResult.DUPLICATE
        record.event_ids.add(change.event_id)
        if change.roster is not None and change.roster_source is not None:
            record.rosters.setdefault(change.roster_source, set()).update(change.roster)
        for item in change.essay_outcomes:
            if item.outcome is EssayOutcome.SUCCEEDED:
                record.succeeded.setdefault(item.step, set()).add(item.essay_id)
            else:
                record.failed.setdefault(item.step, set()).add(item.essay_id)
        if change.batch_outcome_step is not None and change.batch_outcome is not None:
            current = record.outcomes.get(change.batch_outcome_step)
            if current is None or change.batch_outcome.supersedes(current):
                record.outcomes[change.batch_outcome_step] = change.batch_outcome
        return ApplyResult.APPLIED
