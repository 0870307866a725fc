"""In memory: the development store and the tests' fake, with the semantics of the others.

Bounded like them: a batch expires `ttl_seconds` after its last write, and beyond `max_batches`
the batch nearest its expiry is dropped, as Redis would evict it. Every write gives its batch the
same TTL, so an OrderedDict (a written batch moves to the end) is in order of expiry, and both
cost O(1) per write. One lock serialises writers, as WATCH/MULTI/EXEC does per batch in Redis.
"""

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchChange,
    BatchCounts,
    BatchFacts,
    ParkedResult,
    count,
    merge,
)
from batch_conductor_service.health import ComponentHealth, HealthState
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.parking import parking_health


@dataclass
class _Stored:
    expires_at: float
    facts: BatchFacts


class InMemoryBatchStateRepository:
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
        self._batches: OrderedDict[str, _Stored] = OrderedDict()
        self._evicted = 0
        self._lock = asyncio.Lock()

    async def counts(self, batch_id: str) -> BatchCounts:
        async with self._lock:
            stored = self._live(batch_id)
            return BatchCounts(batch_id) if stored is None else count(stored.facts)

    async def facts(self, batch_id: str) -> BatchFacts | None:
        async with self._lock:
            stored = self._live(batch_id)
            return None if stored is None else stored.facts

    async def apply(self, changes: Sequence[BatchChange]) -> list[ApplyResult]:
        async with self._lock:
            now = self._clock()
            self._sweep(now)
            held = {c.batch_id: self._live(c.batch_id) for c in changes}
            merged = merge(
                changes,
                {b: s.facts.event_ids for b, s in held.items() if s is not None},
                {b: s.facts.latest_outcomes() for b, s in held.items() if s is not None},
            )
            for batch_id, added in merged.added.items():
                self._stored(batch_id, now).facts.add(added)
            return merged.results

    async def health(self) -> dict[str, ComponentHealth]:
        detail = {
            "backend": "memory",
            "batches": len(self._batches),
            "max_batches": self._max_batches,
            "evicted": self._evicted,
        }
        return {self.health_name: ComponentHealth(HealthState.OK, detail)}

    def _live(self, batch_id: str) -> _Stored | None:
        stored = self._batches.get(batch_id)
        if stored is not None and stored.expires_at <= self._clock():
            del self._batches[batch_id]
            return None
        return stored

    def _sweep(self, now: float) -> None:
        while self._batches:
            first = next(iter(self._batches.values()))
            if first.expires_at > now:
                return
            self._batches.popitem(last=False)

    def _stored(self, batch_id: str, now: float) -> _Stored:
        stored = self._batches.get(batch_id)
        if stored is None:
            while len(self._batches) >= self._max_batches:
                self._batches.popitem(last=False)
                self._evicted += 1
            stored = self._batches[batch_id] = _Stored(0.0, BatchFacts(batch_id))
        else:
            self._batches.move_to_end(batch_id)
        stored.expires_at = now + self._ttl
        return stored


class InMemoryEssayPlacement:
    """The index lives as long as batch state; a parked result `parked_ttl_seconds`, and at
    most `max_parked` are parked at once."""

    health_name = "parking"

    def __init__(
        self,
        ttl_seconds: float,
        parked_ttl_seconds: float,
        max_parked: int,
        metrics: BcsMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._parked_ttl = parked_ttl_seconds
        self._max_parked = max_parked
        self._metrics = metrics
        self._clock = clock
        # essay id -> batch id -> expiry
        self._index: dict[str, dict[str, float]] = {}
        # essay id -> event id -> result; and when each expires, oldest first (the order they
        # expire in: every result parks for the same time).
        self._parked: dict[str, dict[str, ParkedResult]] = {}
        self._expiry: OrderedDict[tuple[str, str], float] = OrderedDict()

    async def index_rosters(self, rosters: Mapping[str, Collection[str]]) -> None:
        now = self._clock()
        if len(self._index) > 2 * self._max_parked:
            self._index = {
                essay: live
                for essay, batches in self._index.items()
                if (live := {b: at for b, at in batches.items() if at > now})
            }
        for batch_id, essay_ids in rosters.items():
            for essay_id in essay_ids:
                self._index.setdefault(essay_id, {})[batch_id] = now + self._ttl

    async def batches_of(self, essay_ids: Collection[str]) -> dict[str, frozenset[str]]:
        now = self._clock()
        found: dict[str, frozenset[str]] = {}
        for essay_id in essay_ids:
            live = frozenset(b for b, at in self._index.get(essay_id, {}).items() if at > now)
            if live:
                found[essay_id] = live
        return found

    async def park(self, results: Sequence[ParkedResult]) -> list[ParkedResult]:
        now = self._clock()
        self._expire(now)
        refused: list[ParkedResult] = []
        for result in results:
            key = (result.essay_id, result.event_id)
            if key not in self._expiry and len(self._expiry) >= self._max_parked:
                refused.append(result)
                continue
            self._parked.setdefault(result.essay_id, {})[result.event_id] = result
            self._expiry[key] = now + self._parked_ttl
            self._expiry.move_to_end(key)
        return refused

    async def parked_for(self, essay_ids: Collection[str]) -> dict[str, list[ParkedResult]]:
        self._expire(self._clock())
        return {e: list(self._parked[e].values()) for e in essay_ids if e in self._parked}

    async def unpark(self, results: Sequence[ParkedResult]) -> None:
        for result in results:
            self._drop(result.essay_id, result.event_id)
            self._expiry.pop((result.essay_id, result.event_id), None)

    async def health(self) -> dict[str, ComponentHealth]:
        return {self.health_name: parking_health(len(self._expiry), self._max_parked)}

    def _expire(self, now: float) -> None:
        expired = 0
        while self._expiry:
            key, at = next(iter(self._expiry.items()))
            if at > now:
                break
            self._expiry.popitem(last=False)
            self._drop(*key)
            expired += 1
        if expired:
            self._metrics.unplaced_results.labels("expired").inc(expired)

    def _drop(self, essay_id: str, event_id: str) -> None:
        by_event = self._parked.get(essay_id)
        if by_event is not None:
            by_event.pop(event_id, None)
            if not by_event:
                del self._parked[essay_id]
