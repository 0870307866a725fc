"""No prefix of one change's fallback writes proves more than the whole change.

After the last WATCH conflict a change is written one command at a time, and another replica's
/define may read between any two of them. Every prefix of the commands the fallback sends is
replayed on a Redis (fakeredis, with its Lua) that holds a random earlier state, and counted by
the real count script: a step complete at any prefix must be complete before the change or
after all of it.
"""

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from fakeredis import FakeAsyncRedis, FakeServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from batch_conductor_service.domain.batch_state import (
    BatchChange,
    BatchFacts,
    EssayResult,
    RosterSource,
    StepOutcome,
    count,
    merge,
    step_completion,
)
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.guard import StoreGuard
from batch_conductor_service.stores.redis import connection
from batch_conductor_service.stores.redis.layout import LAST_EVENT, VERSION
from batch_conductor_service.stores.redis.store import RedisBatchStateRepository, fallback_commands
from common_core.enums import BatchPhaseStatus
from tests.support.change_strategies import STEPS, changes
from tests.support.hypothesis_profiles import examples


def repository(redis: FakeAsyncRedis) -> RedisBatchStateRepository:
    metrics = BcsMetrics(CollectorRegistry())
    guard = StoreGuard("redis", connection.classify, metrics)
    return RedisBatchStateRepository(redis, guard, metrics, ttl_seconds=3600, key_prefix="bcs")


async def complete_steps(repo: RedisBatchStateRepository) -> frozenset[str]:
    counts = await repo.counts("b")
    return frozenset(step for step in STEPS if step_completion(step, counts).complete)


async def state_after(earlier: list[BatchChange], commands: list[tuple[Any, ...]]) -> Any:
    redis = FakeAsyncRedis(server=FakeServer(), decode_responses=True)
    repo = repository(redis)
    if earlier:
        await repo.apply(earlier)
    keys = repo.keys("b")
    # What the fallback does first: the batch's two keys of facts made together.
    await redis.hsetnx(keys.facts, VERSION, "0")
    await redis.zadd(keys.outcomes, {LAST_EVENT: 0}, gt=True)
    for command in commands:
        await redis.execute_command(*command)
    await redis.delete(keys.counts)  # a reader right now counts what is there
    return repo


def expected_after(earlier: list[BatchChange], change: BatchChange) -> frozenset[str]:
    facts = BatchFacts("b")
    for item in [*earlier, change]:
        merged = merge([item], {"b": facts.event_ids}, {"b": facts.latest_outcomes()})
        for added in merged.added.values():
            facts.add(added)
    return frozenset(s for s in STEPS if step_completion(s, count(facts)).complete)


async def check(earlier: list[BatchChange], change: BatchChange) -> int:
    repo = repository(FakeAsyncRedis(server=FakeServer(), decode_responses=True))
    commands = fallback_commands(repo.keys("b"), change)
    before = await complete_steps(await state_after(earlier, []))
    after = await complete_steps(await state_after(earlier, commands))
    # The fallback ends where the one merge of the domain ends.
    assert after == expected_after(earlier, change)
    for length in range(len(commands) + 1):
        seen = await complete_steps(await state_after(earlier, commands[:length]))
        assert seen <= before | after, (length, commands[:length])
    return len(commands)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(changes(), max_size=4), changes())
def test_every_prefix_of_a_fallback_write_proves_no_more_than_the_whole(
    earlier: list[BatchChange], change: BatchChange
) -> None:
    asyncio.run(check(earlier, change))


def test_a_critical_failure_is_written_before_the_essays_that_would_complete_the_step() -> None:
    # The case found by attack: after the essays' failures and successes, before the batch
    # outcome, a reader saw every essay finished and pruned a FAILED_CRITICALLY step.
    at = datetime(2025, 6, 21, 12, 0, tzinfo=UTC)
    roster = BatchChange(
        "b", at, "r", roster=frozenset({"e1", "e2"}), roster_source=RosterSource.READY
    )
    outcome = BatchChange(
        "b",
        at,
        str(uuid.uuid4()),
        essays=(EssayResult("e1", "spellcheck", True), EssayResult("e2", "spellcheck", False)),
        outcome_step="spellcheck",
        outcome=StepOutcome(BatchPhaseStatus.FAILED_CRITICALLY, at),
    )
    assert asyncio.run(check([roster], outcome)) >= 3
