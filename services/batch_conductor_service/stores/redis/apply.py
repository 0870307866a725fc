"""The write of one batch's changes: atomic by WATCH/MULTI/EXEC, retried on a rival write, and
after the last retry sent as plain set additions, which lose nothing as every write is a union."""

import asyncio
import random
from collections.abc import Sequence
from typing import Any

from redis.exceptions import WatchError

from batch_conductor_service.domain.batch_facts import facts_added_by
from batch_conductor_service.domain.batch_state import ApplyResult, BatchStateChange
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.redis.client import BatchStateRedis
from batch_conductor_service.stores.redis.integrity import held_markers, lost_sets, report_lost
from batch_conductor_service.stores.redis.keys import PRESENT_MARKER, BatchKeys
from batch_conductor_service.stores.redis.scripted_writes import ScriptedWrites
from batch_conductor_service.stores.redis.writes import (
    queue_event_ids,
    queue_facts,
    queue_present_marker,
    queue_ttl,
)


class RedisBatchApplier:
    def __init__(
        self,
        client: BatchStateRedis,
        *,
        ttl_seconds: int,
        metrics: BcsMetrics,
        atomic_attempts: int,
        backoff_seconds: float,
        max_backoff_seconds: float,
    ) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._metrics = metrics
        self._attempts = atomic_attempts
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds

    async def apply_to_batch(
        self, keys: BatchKeys, changes: list[BatchStateChange], *, only_if_held: bool
    ) -> list[ApplyResult] | None:
        """With `only_if_held`, a batch Redis does not hold in full is left untouched and None
        returned: its writer rebuilds it from elsewhere first (stores/durable.py)."""
        # A plain loop, not tenacity: this runs once per batch in every fetch, and tenacity's
        # bookkeeping per call cost more than the write's own Python work.
        for attempt in range(1, self._attempts + 1):
            try:
                return await self._apply_atomically(keys, changes, only_if_held)
            except WatchError:
                if attempt == self._attempts:
                    break
                self._metrics.repository_atomic_retries.labels("apply").inc()
                # Exponential backoff with full jitter, capped.
                ceiling = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
                await asyncio.sleep(random.uniform(0, ceiling))
        self._metrics.repository_fallbacks.labels("apply").inc()
        return await self._apply_commutatively(keys, changes, only_if_held)

    async def _apply_atomically(
        self, keys: BatchKeys, changes: list[BatchStateChange], only_if_held: bool
    ) -> list[ApplyResult] | None:
        async with self._client.pipeline(transaction=True) as pipe:
            # Any write to the batch adds to its events set, so watching it covers the batch.
            await pipe.watch(keys.events)
            markers = held_markers(keys)
            seen = await pipe.smismember(
                keys.events, [PRESENT_MARKER, *markers, *_event_ids(changes)]
            )
            held, seen_ids = seen[1 : 1 + len(markers)], seen[1 + len(markers) :]
            if only_if_held and not (seen[0] and await self._sets_there(pipe, keys, held)):
                return None
            known = {c.event_id for c, s in zip(changes, seen_ids, strict=True) if s}
            pipe.multi()
            writes = ScriptedWrites()
            results = queue_new_facts(writes, keys, changes, known, self._ttl)
            writes.queue_on(pipe)
            await pipe.execute()
        return results

    async def _apply_commutatively(
        self, keys: BatchKeys, changes: list[BatchStateChange], only_if_held: bool
    ) -> list[ApplyResult] | None:
        """Single-command set additions, in an order that keeps every prefix of them safe:
        facts before the event id that marks them done, everything before the present marker."""
        # A batch held a moment ago may expire before these land: then they must not mark it
        # held, or it would read as complete with only these facts in it.
        if only_if_held and not await self._is_held(keys):
            return None
        event_id_replies: list[int] = []
        async with self._client.pipeline(transaction=False) as pipe:
            for change in changes:
                queue_facts(pipe, keys, facts_added_by(keys.batch_id, [change]))
                queue_event_ids(pipe, keys, [change.event_id])
                event_id_replies.append(len(pipe) - 1)
            if not only_if_held:
                queue_present_marker(pipe, keys)
            queue_ttl(pipe, keys, self._ttl)
            replies = await pipe.execute()
        return [
            ApplyResult.APPLIED if replies[i] else ApplyResult.DUPLICATE for i in event_id_replies
        ]

    async def _is_held(self, keys: BatchKeys) -> bool:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.smismember(keys.events, [PRESENT_MARKER, *held_markers(keys)])
            for _, key in keys.fact_sets:
                pipe.exists(key)
            (flags, *there) = await pipe.execute()
        return bool(flags[0]) and self._none_lost(keys, flags[1:], there)

    async def _sets_there(self, pipe: Any, keys: BatchKeys, held: list[Any]) -> bool:
        """Under WATCH: whether every set marked held is there (one EXISTS of those)."""
        marked = [key for (_, key), is_held in zip(keys.fact_sets, held, strict=True) if is_held]
        if not marked:
            return True
        there = await pipe.exists(*marked)
        if there == len(marked):
            return True
        # Which ones is only for the report; rare enough to ask again, one by one.
        present = [
            bool(await pipe.exists(key)) if h else False
            for (_, key), h in zip(keys.fact_sets, held, strict=True)
        ]
        return self._none_lost(keys, held, present)

    def _none_lost(self, keys: BatchKeys, held: list[Any], present: list[Any]) -> bool:
        return none_lost(self._metrics, keys, held, present)


def none_lost(metrics: BcsMetrics, keys: BatchKeys, held: list[Any], present: list[Any]) -> bool:
    """Whether every set marked held is present; the lost ones are reported."""
    lost = lost_sets(keys, held, present)
    if lost:
        report_lost(metrics, keys, lost)
    return not lost


def queue_new_facts(
    writes: ScriptedWrites,
    keys: BatchKeys,
    changes: Sequence[BatchStateChange],
    known: set[str],
    ttl_seconds: int,
) -> list[ApplyResult]:
    """Queues the atomic write of the changes whose event ids the batch does not hold yet
    (`known` are those it holds); returns each change's result."""
    results = _dedupe(changes, known)
    applied = [c for c, r in zip(changes, results, strict=True) if r is ApplyResult.APPLIED]
    added = facts_added_by(keys.batch_id, applied)
    queue_facts(writes, keys, added)
    queue_event_ids(writes, keys, added.event_ids)
    queue_present_marker(writes, keys)
    queue_ttl(writes, keys, ttl_seconds)
    return results


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
