"""No prefix of one change's fallback writes proves more than the whole change.

After the last WATCH conflict a change is written one command at a time, and another replica's
/define may read between any two of them. The commands the fallback really sends are recorded,
and every prefix of them is replayed on a Redis (fakeredis) that holds a random earlier state:
a step complete at any prefix must be complete before the change or after all of it.
"""

import asyncio
from datetime import UTC, datetime
from typing import Any

from fakeredis import FakeAsyncRedis, FakeServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from batch_conductor_service.domain.batch_facts import BatchFacts, apply_change
from batch_conductor_service.domain.batch_state import (
    BatchOutcome,
    BatchStateChange,
    EssayOutcome,
    EssayStepOutcome,
    RosterSource,
)
from batch_conductor_service.domain.completion import step_completion
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.redis.apply import RedisBatchApplier
from batch_conductor_service.stores.redis.keys import BatchKeys
from batch_conductor_service.stores.redis.reads import facts_from_sets, read_batch_sets
from common_core.enums import BatchPhaseStatus
from tests.support.change_strategies import STEPS, changes

KEYS = BatchKeys("bcs", "b")
Command = tuple[str, tuple[Any, ...], dict[str, Any]]


class RecordingPipe:
    """Takes the commands a pipeline is given and answers as if each added something."""

    def __init__(self, commands: list[Command]) -> None:
        self._commands = commands

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            self._commands.append((name, args, kwargs))

        return record

    def __len__(self) -> int:
        return len(self._commands)

    async def execute(self) -> list[int]:
        return [1] * len(self._commands)

    async def __aenter__(self) -> "RecordingPipe":
        return self

    async def __aexit__(self, *_: object) -> None:
        return None


class RecordingClient:
    def __init__(self) -> None:
        self.commands: list[Command] = []

    def pipeline(self, transaction: bool = True) -> RecordingPipe:
        return RecordingPipe(self.commands)


def applier(client: Any) -> RedisBatchApplier:
    return RedisBatchApplier(
        client,
        ttl_seconds=3600,
        metrics=BcsMetrics(CollectorRegistry()),
        atomic_attempts=1,
        backoff_seconds=0.0,
        max_backoff_seconds=0.0,
    )


async def fallback_commands(change: BatchStateChange) -> list[Command]:
    client = RecordingClient()
    await applier(client)._apply_commutatively(KEYS, [change], only_if_held=False)
    return client.commands


async def complete_steps(redis: FakeAsyncRedis) -> frozenset[str]:
    facts = facts_from_sets(
        KEYS, await read_batch_sets(redis, KEYS), BcsMetrics(CollectorRegistry())
    )
    snapshot = (facts or BatchFacts("b")).to_snapshot()
    return frozenset(step for step in STEPS if step_completion(step, snapshot).complete)


async def state_after(earlier: list[BatchStateChange], commands: list[Command]) -> FakeAsyncRedis:
    redis = FakeAsyncRedis(server=FakeServer(), decode_responses=True)
    if earlier:
        await applier(redis)._apply_atomically(KEYS, earlier, only_if_held=False)
    async with redis.pipeline(transaction=False) as pipe:
        for name, args, kwargs in commands:
            getattr(pipe, name)(*args, **kwargs)
        await pipe.execute()
    return redis


async def check(earlier: list[BatchStateChange], change: BatchStateChange) -> int:
    commands = await fallback_commands(change)
    before = await complete_steps(await state_after(earlier, []))
    after_redis = await state_after(earlier, commands)
    after = await complete_steps(after_redis)
    # The fallback ends where the one merge of the domain ends.
    facts = BatchFacts("b")
    for item in [*earlier, change]:
        facts = apply_change(facts, item).facts
    expected = frozenset(s for s in STEPS if step_completion(s, facts.to_snapshot()).complete)
    assert after == expected
    for length in range(len(commands) + 1):
        seen = await complete_steps(await state_after(earlier, commands[:length]))
        assert seen <= before | after, (length, commands[:length])
    return len(commands)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(changes(), max_size=4), changes())
def test_every_prefix_of_a_fallback_write_proves_no_more_than_the_whole(
    earlier: list[BatchStateChange], change: BatchStateChange
) -> None:
    asyncio.run(check(earlier, change))


def test_a_critical_failure_is_written_before_the_essays_that_would_complete_the_step() -> None:
    # The case found by attack: after the essays' failures and successes, before the batch
    # outcome, a reader saw every essay finished and pruned a FAILED_CRITICALLY step.
    at = datetime(2025, 6, 21, 12, 0, tzinfo=UTC)
    roster = BatchStateChange("r", "b", at, frozenset({"e1", "e2"}), RosterSource.READY)
    outcome = BatchStateChange(
        "o",
        "b",
        at,
        essay_outcomes=(
            EssayStepOutcome("e1", "spellcheck", EssayOutcome.SUCCEEDED),
            EssayStepOutcome("e2", "spellcheck", EssayOutcome.FAILED),
        ),
        batch_outcome_step="spellcheck",
        batch_outcome=BatchOutcome(BatchPhaseStatus.FAILED_CRITICALLY, at),
    )
    assert asyncio.run(check([roster], outcome)) >= 4
