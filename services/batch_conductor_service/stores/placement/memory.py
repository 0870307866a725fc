"""In-memory essay placement, for the in-memory repository: same TTL and semantics as Redis."""

import time
from collections.abc import Callable, Collection, Mapping, Sequence

from batch_conductor_service.domain.placement import UnplacedResult

# Expired entries are dropped every so many writes, so a long-running dev service stays small.
SWEEP_EVERY_WRITES = 1024


class InMemoryEssayPlacement:
    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._writes = 0
        # essay id -> batch id -> expiry; essay id -> event id -> (result, expiry)
        self._batches: dict[str, dict[str, float]] = {}
        self._kept: dict[str, dict[str, tuple[UnplacedResult, float]]] = {}

    async def index_rosters(self, rosters: Mapping[str, Collection[str]]) -> None:
        expires = self._written()
        for batch_id, essay_ids in rosters.items():
            for essay_id in essay_ids:
                self._batches.setdefault(essay_id, {})[batch_id] = expires

    async def batches_of(self, essay_ids: Collection[str]) -> dict[str, frozenset[str]]:
        now = self._clock()
        found: dict[str, frozenset[str]] = {}
        for essay_id in essay_ids:
            live = frozenset(b for b, at in self._batches.get(essay_id, {}).items() if at > now)
            if live:
                found[essay_id] = live
        return found

    async def keep(self, results: Sequence[UnplacedResult]) -> None:
        expires = self._written()
        for result in results:
            self._kept.setdefault(result.essay_id, {})[result.event_id] = (result, expires)

    async def kept_for(self, essay_ids: Collection[str]) -> dict[str, list[UnplacedResult]]:
        now = self._clock()
        found: dict[str, list[UnplacedResult]] = {}
        for essay_id in essay_ids:
            live = [r for r, at in self._kept.get(essay_id, {}).values() if at > now]
            if live:
                found[essay_id] = live
        return found

    def __len__(self) -> int:
        """Essays with an index entry or a kept result, expired or not yet swept."""
        return len(self._batches.keys() | self._kept.keys())

    def _written(self) -> float:
        now = self._clock()
        self._writes += 1
        if self._writes % SWEEP_EVERY_WRITES == 0:
            self._sweep(now)
        return now + self._ttl

    def _sweep(self, now: float) -> None:
        for essay_id, batches in list(self._batches.items()):
            live_batches = {b: at for b, at in batches.items() if at > now}
            if live_batches:
                self._batches[essay_id] = live_batches
            else:
                del self._batches[essay_id]
        for essay_id, kept in list(self._kept.items()):
            live_kept = {e: entry for e, entry in kept.items() if entry[1] > now}
            if live_kept:
                self._kept[essay_id] = live_kept
            else:
                del self._kept[essay_id]
