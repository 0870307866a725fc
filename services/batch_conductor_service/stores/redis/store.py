"""Batch state in Redis (layout.py): read with one script call (shared by the reads asked
within a few turns of the event loop), written with WATCH/MULTI/EXEC.

Every write takes one road: WATCH the batches' keys, read what the decision needs (one pipelined
round trip, on any connection: a change after the WATCH aborts the EXEC whoever read it), decide
in Python, then MULTI, the commands, EXEC. A rival write makes it try again, up to five times with
exponential backoff and jitter (tenacity); then it falls back to writes that each stand alone and
lose nothing (`_fall_back`). On one server a call's batches share transactions; on a cluster each
batch has its own, as its keys live in its own slot.

Redis alone decides by domain.batch_state.merge itself (event ids kept in the batch, the repeat
rule). Under the PostgreSQL record (durable.py) it takes what the record decided, and holds a
batch only as of the record's version of it: a write that does not follow the version Redis holds
is not made, and the record rebuilds the batch instead.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import WatchError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from batch_conductor_service.domain.batch_state import (
    FINISHING_STATUSES,
    ApplyResult,
    BatchChange,
    BatchCounts,
    BatchFacts,
    OutcomeKey,
    RecordedBatch,
    latest_outcomes,
    merge,
)
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.health import ComponentHealth, HealthState
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.guard import CircuitState, StoreGuard
from batch_conductor_service.stores.redis.connection import (
    SAFE_EVICTION_POLICY,
    RedisClient,
    SharedScriptCalls,
    read_eviction_policy,
    size_bounded,
)
from batch_conductor_service.stores.redis.layout import (
    ADD_FACTS_SCRIPT,
    COUNT_SCRIPT,
    DAMAGED,
    EVENT_ID,
    LAST_EVENT,
    SEPARATOR,
    VERSION,
    BatchKeys,
    CountReply,
    fact_names,
    joined_names,
    outcome_scores,
    parse_count_reply,
    parse_outcomes,
)
from huleedu_service_libs.log_bounds import clip, clip_id
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)

STORE = "redis"
# A transaction holds at most about this many hash fields and members: one EXEC runs alone on
# the server, and packing it is one piece of this process's event loop; /define's reads wait
# behind both. At 20,000, a fetch of rosters held the loop for about 80 ms.
MAX_MEMBERS_PER_TRANSACTION = 2_000
# redis-py's pipelines are generic over the connection's reply type; nothing here depends on it.
Pipe = Any


@dataclass
class BatchRead:
    """What a write decides by, read under WATCH."""

    version: int | None
    damaged: bool
    known_ids: set[str] = field(default_factory=set)
    outcomes: dict[OutcomeKey, datetime] = field(default_factory=dict)


# Decides the writes from what was read under the WATCH: queues them on the pipe (after MULTI)
# and returns what the caller needs back (None: nothing to write).
Plan = Callable[[Pipe, Mapping[str, BatchRead]], Awaitable[Any]]


class RedisBatchStateRepository:
    health_name = STORE

    def __init__(
        self,
        client: RedisClient,
        guard: StoreGuard,
        metrics: BcsMetrics,
        *,
        ttl_seconds: int,
        key_prefix: str = "bcs",
        max_concurrent_writes: int = 16,
        attempts: int = 5,
        health_timeout_seconds: float = 1.0,
    ) -> None:
        self._client = client
        self._guard = guard
        self._metrics = metrics
        self._ttl = ttl_seconds
        self._prefix = key_prefix
        self._attempts = attempts
        self._health_timeout = health_timeout_seconds
        self._writes = asyncio.Semaphore(max_concurrent_writes)
        self._one_slot_per_batch = isinstance(client, RedisCluster)
        self._count = SharedScriptCalls(client, COUNT_SCRIPT)
        # Redis's maxmemory-policy; None until it could be read.
        self.eviction_policy: str | None = None

    def keys(self, batch_id: str) -> BatchKeys:
        return BatchKeys(self._prefix, batch_id)

    async def counts(self, batch_id: str) -> BatchCounts:
        """Redis alone: a batch it lost a key of answers as unknown, nothing pruned."""
        return (await self.read_counts(batch_id)).counts or BatchCounts(batch_id)

    async def read_counts(self, batch_id: str) -> CountReply:
        keys = self.keys(batch_id)
        raw = await self._guard.run("read", lambda: self._count(keys.for_count_script))
        reply = parse_count_reply(batch_id, raw)
        if reply.lost:
            self._report_lost(keys)
        if reply.unparsed:
            self._metrics.repository_errors.labels(STORE, "parse").inc(reply.unparsed)
            logger.warning("unparsable_redis_fields_skipped", batch_id=clip_id(batch_id))
        return reply

    async def apply(self, changes: Sequence[BatchChange]) -> list[ApplyResult]:
        """Redis alone: decides by merge, keeping the batch's event ids with its facts."""
        results: list[ApplyResult] = [ApplyResult.APPLIED] * len(changes)
        by_batch: dict[str, list[int]] = {}
        for index, change in enumerate(changes):
            by_batch.setdefault(change.batch_id, []).append(index)

        async def write(batch_ids: list[str]) -> None:
            positions = [i for b in batch_ids for i in by_batch[b]]
            part = [changes[i] for i in positions]
            ids = {
                b: [i for i in (changes[x].event_id for x in by_batch[b]) if i] for b in batch_ids
            }

            async def plan(pipe: Pipe, reads: Mapping[str, BatchRead]) -> list[ApplyResult]:
                merged = merge(
                    part,
                    {b: read.known_ids for b, read in reads.items()},
                    {b: latest_outcomes(read.outcomes.items()) for b, read in reads.items()},
                )
                for batch_id, added in merged.added.items():
                    read = reads[batch_id]
                    if read.damaged:
                        self._report_lost(self.keys(batch_id))
                    self._queue(
                        pipe,
                        self.keys(batch_id),
                        fact_names(added, with_event_ids=True),
                        outcome_scores(added),
                        version=0 if read.version is None else None,
                        damaged=read.damaged,
                    )
                return merged.results

            written = await self._transaction(batch_ids, ids, plan)
            if written is None:
                written = await self._fall_back(part)
            for position, result in zip(positions, written, strict=True):
                results[position] = result

        await self._in_parts(_sizes(changes), write)
        return results

    async def apply_recorded(self, recorded: Mapping[str, RecordedBatch]) -> set[str]:
        """Under the record: writes each batch's added facts where Redis holds the version
        they follow. Returns the batches the record must rebuild instead (Redis does not hold
        them, lost a key, or missed a version, as a failover or an outage mid-write leaves it)."""
        rebuild: set[str] = set()

        async def write(batch_ids: list[str]) -> None:
            async def plan(pipe: Pipe, reads: Mapping[str, BatchRead]) -> set[str]:
                behind: set[str] = set()
                for batch_id in batch_ids:
                    read, done = reads[batch_id], recorded[batch_id]
                    if read.damaged:
                        self._report_lost(self.keys(batch_id))
                        behind.add(batch_id)
                    elif read.version is not None and read.version >= done.version:
                        continue  # a rebuild since brought this in already
                    elif done.version == 0:
                        continue  # nothing of it recorded yet
                    elif (read.version or 0) == done.previous_version < done.version:
                        self._queue(
                            pipe,
                            self.keys(batch_id),
                            fact_names(done.added, with_event_ids=False),
                            outcome_scores(done.added),
                            version=done.version,
                        )
                    else:
                        behind.add(batch_id)
                return behind

            behind = await self._transaction(batch_ids, {}, plan)
            if behind is None:
                # Rival writes all the way: the batches are marked not held, so the next read
                # or write rebuilds them from the record, which has everything.
                self._metrics.repository_fallbacks.labels("apply").inc()
                await self._forget(batch_ids)
                return
            rebuild.update(behind)

        await self._in_parts({b: _size(r.added) for b, r in recorded.items()}, write)
        return rebuild

    async def restore(
        self, batch_id: str, load: Callable[[], Awaitable[tuple[BatchFacts, int] | None]]
    ) -> None:
        """Puts the record's facts of a batch into Redis at the record's version of it (a
        union: what Redis holds beyond them stays). `load` runs under the WATCH, so every write
        that reached Redis before it is in what it loads."""
        keys = self.keys(batch_id)
        in_record = True

        async def plan(pipe: Pipe, reads: Mapping[str, BatchRead]) -> bool | None:
            nonlocal in_record
            loaded = await load()
            in_record = loaded is not None
            if loaded is None:
                return None
            facts, version = loaded
            self._queue(
                pipe,
                keys,
                fact_names(facts, with_event_ids=False),
                outcome_scores(facts),
                version=version,
            )
            pipe.hdel(keys.facts, DAMAGED)
            return True

        if (
            await self._guard.run("restore", lambda: self._transaction([batch_id], {}, plan))
            is None
            and in_record
        ):
            # Rival writes all along; the caller has its answer from the record meanwhile.
            logger.warning("state_rebuild_gave_up", batch_id=clip_id(batch_id))

    async def health(self) -> dict[str, ComponentHealth]:
        detail: dict[str, Any] = {"circuit": self._guard.state.value}
        try:
            await asyncio.wait_for(self._client.ping(), self._health_timeout)
        except Exception as exc:
            detail["error"] = f"{type(exc).__name__}: {clip(str(exc), 200)}"
            return {STORE: ComponentHealth(HealthState.UNHEALTHY, detail)}
        if self.eviction_policy is None:
            await self.check_eviction_policy()
        if self.eviction_policy not in (None, SAFE_EVICTION_POLICY):
            detail["maxmemory_policy"] = self.eviction_policy
            detail["maxmemory_policy_warning"] = (
                "not noeviction: Redis may evict single keys of a batch; with PostgreSQL they "
                "are rebuilt, with Redis alone such a batch answers as unknown (docs/failures.md)"
            )
        state = HealthState.OK if self._guard.state is CircuitState.CLOSED else HealthState.DEGRADED
        return {STORE: ComponentHealth(state, detail)}

    async def check_eviction_policy(self) -> None:
        self.eviction_policy = await read_eviction_policy(self._client, self._health_timeout)

    async def _in_parts(
        self, sizes: Mapping[str, int], write: Callable[[list[str]], Awaitable[None]]
    ) -> None:
        """Writes the batches in parts side by side: a part is one batch on a cluster, else as
        many batches as fit a transaction. Every part finishes before a failure is raised, an
        outage ahead of anything else, so no write is left running when the call fails."""
        parts = size_bounded(sizes, MAX_MEMBERS_PER_TRANSACTION, one_each=self._one_slot_per_batch)

        async def limited(part: list[str]) -> None:
            async with self._writes:
                await self._guard.run("apply", lambda: write(part))

        done = await asyncio.gather(*(limited(p) for p in parts), return_exceptions=True)
        failures = [d for d in done if isinstance(d, BaseException)]
        if failures:
            outages = [f for f in failures if isinstance(f, StateStoreUnavailableError)]
            raise (outages or failures)[0]

    async def _transaction(
        self, batch_ids: list[str], event_ids: Mapping[str, list[str]], plan: Plan
    ) -> Any:
        """`plan`'s answer once its writes are in, retried on rival writes; None when it had
        nothing to write, or once the retries are used up (the caller falls back)."""
        keys = [self.keys(b) for b in batch_ids]
        watched = [key for k in keys for key in (k.facts, k.outcomes)]

        async def once() -> Any:
            async with self._client.pipeline(transaction=True) as pipe:
                await pipe.watch(*watched)
                reads = await self._read(keys, event_ids)
                pipe.multi()  # type: ignore[no-untyped-call]
                answer = await plan(pipe, reads)
                if answer is not None:
                    await pipe.execute()
                return answer

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_random_exponential(multiplier=0.005, max=0.2),
            retry=retry_if_exception_type(WatchError),
            before_sleep=lambda _: self._metrics.repository_atomic_retries.labels("apply").inc(),
            reraise=True,
        )
        try:
            return await retrying(once)
        except WatchError:
            return None

    async def _read(
        self, keys: list[BatchKeys], event_ids: Mapping[str, list[str]]
    ) -> dict[str, BatchRead]:
        async with self._client.pipeline(transaction=False) as pipe:
            for k in keys:
                ids = event_ids.get(k.batch_id, [])
                pipe.hmget(k.facts, [VERSION, DAMAGED, *(EVENT_ID + i for i in ids)])
                pipe.zrange(k.outcomes, 0, -1, withscores=True)
            replies = await pipe.execute()
        reads: dict[str, BatchRead] = {}
        for k, flags, scored in zip(keys, replies[::2], replies[1::2], strict=True):
            version, damaged, *seen = flags
            outcomes, _, _ = parse_outcomes(scored)
            ids = event_ids.get(k.batch_id, [])
            reads[k.batch_id] = BatchRead(
                version=None if version is None else int(version),
                # Flagged before, or one key of facts without the other: a key was lost.
                damaged=damaged is not None or (version is None) == bool(scored),
                known_ids={i for i, s in zip(ids, seen, strict=True) if s is not None},
                outcomes=outcomes,
            )
        return reads

    def _queue(
        self,
        pipe: Pipe,
        keys: BatchKeys,
        names: list[str],
        scores: dict[str, int],
        *,
        version: int | None = None,
        damaged: bool = False,
    ) -> None:
        if names:
            pipe.eval(ADD_FACTS_SCRIPT, 1, keys.facts, joined_names(names))
        flags = {VERSION: str(version)} if version is not None else {}
        if damaged:
            flags[DAMAGED] = "1"
        if flags:
            pipe.hset(keys.facts, mapping=flags)
        # Every write leaves the outcomes key there, so that facts without it mean a lost key.
        pipe.zadd(keys.outcomes, {LAST_EVENT: 0, **scores}, gt=True)
        pipe.delete(keys.counts)
        pipe.expire(keys.facts, self._ttl)
        pipe.expire(keys.outcomes, self._ttl)

    async def _fall_back(self, changes: Sequence[BatchChange]) -> list[ApplyResult]:
        """Redis alone, after the last rival write: each change as commands that stand alone
        and lose nothing (`fallback_commands`), then the event ids that mark the changes done,
        in a second round trip so that no id is written when a fact failed to be. The repeat
        rule cannot be kept here: a repeated outcome moves its time forward."""
        self._metrics.repository_fallbacks.labels("apply").inc()
        batch_ids = list(dict.fromkeys(c.batch_id for c in changes))
        for batch_id in batch_ids:
            await self._ensure_present(self.keys(batch_id))
        async with self._client.pipeline(transaction=False) as pipe:
            for change in changes:
                for command in fallback_commands(self.keys(change.batch_id), change):
                    pipe.execute_command(*command)
            await pipe.execute()
        async with self._client.pipeline(transaction=False) as pipe:
            with_ids = [c for c in changes if c.event_id is not None]
            for change in with_ids:
                pipe.hsetnx(self.keys(change.batch_id).facts, EVENT_ID + str(change.event_id), "")
            for batch_id in batch_ids:
                keys = self.keys(batch_id)
                # After the facts: counts kept meanwhile are dropped, later ones saw them.
                pipe.delete(keys.counts)
                pipe.expire(keys.facts, self._ttl)
                pipe.expire(keys.outcomes, self._ttl)
            replies = iter(await pipe.execute())
        new = {id(c): bool(next(replies)) for c in with_ids}
        return [
            ApplyResult.APPLIED if new.get(id(c), True) else ApplyResult.DUPLICATE for c in changes
        ]

    async def _ensure_present(self, keys: BatchKeys) -> None:
        """The fallback's first write to a batch: its two keys of facts made together (one
        without the other reads as a lost key), and a batch that lost one marked damaged."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hexists(keys.facts, VERSION)
            pipe.exists(keys.outcomes)
            held, has_outcomes = await pipe.execute()
        if held and has_outcomes:
            return
        async with self._client.pipeline(transaction=True) as pipe:
            if held or has_outcomes:
                self._report_lost(keys)
                pipe.hset(keys.facts, DAMAGED, "1")
            pipe.hsetnx(keys.facts, VERSION, "0")
            pipe.zadd(keys.outcomes, {LAST_EVENT: 0}, gt=True)
            await pipe.execute()

    async def _forget(self, batch_ids: list[str]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for batch_id in batch_ids:
                pipe.hdel(self.keys(batch_id).facts, VERSION)
            await pipe.execute()

    def _report_lost(self, keys: BatchKeys) -> None:
        self._metrics.repository_errors.labels(STORE, "lost_keys").inc()
        logger.warning(
            "redis_batch_lost_a_key",
            batch_id=clip_id(keys.batch_id),
            keys=[clip(keys.facts), clip(keys.outcomes)],
        )


_FINISHING = tuple(SEPARATOR + status.value for status in FINISHING_STATUSES)


def fallback_commands(keys: BatchKeys, change: BatchChange) -> list[tuple[Any, ...]]:
    """A change's facts as commands that each stand alone: each adds hash fields or keeps the
    later score (ZADD GT), so none loses another's fact. In an order where no prefix proves a
    step complete that the whole change does not: what can only keep a step incomplete first,
    then the roster (one command: it fixes which essays must finish), failures, successes, and
    last the outcomes that finish a step."""
    facts = merge([change], {}, {}).added[change.batch_id]
    scores = outcome_scores(facts)
    finishing = {m: t for m, t in scores.items() if m.endswith(_FINISHING)}
    failing = {m: t for m, t in scores.items() if m not in finishing}
    commands: list[tuple[Any, ...]] = []
    if failing:
        commands.append(("ZADD", keys.outcomes, "GT", *_score_args(failing)))
    for part in (
        BatchFacts(facts.batch_id, rosters=facts.rosters),
        BatchFacts(facts.batch_id, failed=facts.failed),
        BatchFacts(facts.batch_id, succeeded=facts.succeeded),
    ):
        if names := fact_names(part, with_event_ids=False):
            commands.append(("EVAL", ADD_FACTS_SCRIPT, 1, keys.facts, joined_names(names)))
    if finishing:
        commands.append(("ZADD", keys.outcomes, "GT", *_score_args(finishing)))
    return commands


def _score_args(scores: Mapping[str, int]) -> list[Any]:
    return [x for member, score in scores.items() for x in (score, member)]


def _size(facts: BatchFacts) -> int:
    """About how many hash fields and members writing the facts takes."""
    ids = (*facts.rosters.values(), *facts.succeeded.values(), *facts.failed.values())
    return 2 + len(facts.outcomes) + sum(len(i) for i in ids)


def _sizes(changes: Sequence[BatchChange]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for change in changes:
        added = 2 + len(change.roster or ()) + len(change.essays)
        sizes[change.batch_id] = sizes.get(change.batch_id, 0) + added
    return sizes
