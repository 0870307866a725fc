"""Scenarios of the consumer's guarantees, told once and run on every kind of store: the unit
tests run them on the in-memory stores, tests/integration/consumer on Redis and on Redis +
PostgreSQL as well. Ids are fresh per run, so real stores shared by tests never collide.

The placement rule (docs/design.md, "Results that name no batch"): a result that names no batch
is placed into the batches whose rosters name its essay when it is handled; when no roster names
it yet, it is parked, and placed into the batches whose rosters name it in the first fetch that
has such a roster; then it leaves the parking lot. Each result is placed once: a roster that
comes after that (a batch registered later with the same essay) does not get it.

The time rule (docs/design.md, "Which outcome is latest"): a batch outcome from an event counts
at the earlier of its producer's stamp and the moment BCS received it; a report over HTTP at the
moment it was received. So a producer whose clock runs ahead cannot outrank a report that
arrives after its event.
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from batch_conductor_service.api.phase_reports import PhaseReportService
from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchChange,
    BatchCounts,
    step_completion,
)
from batch_conductor_service.domain.pipelines_file import load_pipelines
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from common_core.topics import Topic
from tests.support import event_factory as ev
from tests.support.pipeline_harness import PipelineHarness

SPELLCHECK = Topic.SPELLCHECK_COMPLETED.value
READY = Topic.BATCH_ESSAYS_READY.value
OUTCOME = Topic.BATCH_PHASE_OUTCOME.value
PIPELINES = Path(__file__).resolve().parents[2] / "pipelines.yaml"

Event = tuple[str, dict[str, Any]]


def fresh(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


def result(essay_id: str, status: str = "spellchecked_success") -> Event:
    """A seed-era spellcheck result as the real spell checker sends it: naming no batch."""
    return SPELLCHECK, ev.spellcheck(None, essay_id, status)


def roster(batch_id: str, essay_ids: list[str]) -> Event:
    return READY, ev.ready(batch_id, essay_ids)


async def parked(harness: PipelineHarness, essay_id: str) -> set[str]:
    """The event ids of the results parked for this essay."""
    found = await harness.placement.parked_for([essay_id])
    return {r.event_id for r in found.get(essay_id, [])}


async def placed_on_arrival(harness: PipelineHarness) -> None:
    """A result whose essay a roster already names is placed at once and never parked."""
    batch, essay = fresh("batch"), fresh("essay")
    await harness.fetch(roster(batch, [essay]))

    await harness.fetch(result(essay))

    assert (await harness.step(batch, "spellcheck")).roster_succeeded == 1
    assert await parked(harness, essay) == set()
    assert (harness.unplaced("placed_on_arrival"), harness.unplaced("parked")) == (1, 0)
    assert harness.dead_letters.sent == []


async def parked_until_a_roster_names_it(harness: PipelineHarness) -> None:
    """A result no roster names waits in the lot, changing no batch, until the first roster
    that names its essay: then it is placed into that batch and leaves the lot."""
    batch, essay = fresh("batch"), fresh("essay")
    waiting = result(essay, "spellcheck_failed")
    await harness.fetch(waiting)
    assert await parked(harness, essay) == {waiting[1]["event_id"]}
    assert harness.processed(SPELLCHECK, "parked") == 1
    assert harness.dead_letters.sent == []

    await harness.fetch(roster(batch, [essay, fresh("essay")]))

    step = await harness.step(batch, "spellcheck")
    assert (step.roster_failed, step.roster_succeeded) == (1, 0)
    assert await parked(harness, essay) == set()
    assert harness.unplaced("placed_by_roster") == 1


async def placed_once(harness: PipelineHarness) -> None:
    """The placement rule (module docstring): a result parked before batch B's roster existed
    is placed into B when B's roster arrives; once placed, it is NOT placed again into a batch
    C whose roster, arriving later, names the same essay. The same holds for a result placed on
    arrival: a roster that comes after it does not get it either."""
    b, c, essay = fresh("batch-b"), fresh("batch-c"), fresh("essay")
    await harness.fetch(result(essay))
    await harness.fetch(roster(b, [essay]))
    assert (await harness.step(b, "spellcheck")).roster_succeeded == 1

    await harness.fetch(roster(c, [essay]))

    c_counts = await harness.counts(c)
    assert c_counts.roster_size == 1
    assert c_counts.counts_for("spellcheck").succeeded == 0
    assert await parked(harness, essay) == set()

    # Placed on arrival into D (its roster came first): a later roster E does not get it.
    d, e, other = fresh("batch-d"), fresh("batch-e"), fresh("essay")
    await harness.fetch(roster(d, [other]))
    await harness.fetch(result(other))
    await harness.fetch(roster(e, [other]))
    assert (await harness.step(d, "spellcheck")).roster_succeeded == 1
    assert (await harness.step(e, "spellcheck")).succeeded == 0


async def refused_when_the_lot_is_full(harness: PipelineHarness) -> None:
    """With the lot full (max_parked: 1), a result no roster names cannot wait: it is
    dead-lettered as `unplaceable_event`, and the result parked before it stays parked."""
    first, second = fresh("essay"), fresh("essay")
    kept = result(first)
    await harness.fetch(kept)

    [refused] = await harness.fetch(result(second))

    [dead] = harness.dead_letters.sent
    assert (dead.reason, dead.offset, dead.original_topic) == (
        "unplaceable_event",
        refused.offset,
        SPELLCHECK,
    )
    assert await parked(harness, first) == {kept[1]["event_id"]}
    assert await parked(harness, second) == set()
    assert harness.unplaced("refused") == 1
    assert harness.dead_lettered(SPELLCHECK, "unplaceable_event") == 1
    # A result a roster names needs no room in the lot, full or not.
    batch = fresh("batch")
    await harness.fetch(roster(batch, [second]))
    await harness.fetch(result(second))
    assert (await harness.step(batch, "spellcheck")).roster_succeeded == 1
    assert len(harness.dead_letters.sent) == 1


async def expired_results_are_gone(
    harness: PipelineHarness, past_expiry: Callable[[], Awaitable[None]]
) -> None:
    """A parked result lives as long as the lot keeps results (BCS_PARKED_RESULT_TTL_SECONDS):
    a roster arriving after that finds nothing to place."""
    batch, essay = fresh("batch"), fresh("essay")
    await harness.fetch(result(essay))
    assert await parked(harness, essay) != set()

    await past_expiry()
    await harness.fetch(roster(batch, [essay]))

    assert (await harness.step(batch, "spellcheck")).succeeded == 0
    assert await parked(harness, essay) == set()


class FailingFor:
    """A repository whose writes fail (not an outage: a ValueError) whenever they hold a
    change of one of these event ids; the others' writes go through. `failing` can be emptied
    to let them through too."""

    def __init__(self, inner: BatchStateRepositoryProtocol, event_ids: set[str]) -> None:
        self.inner = inner
        self.failing = set(event_ids)
        self.calls: list[list[BatchChange]] = []

    async def counts(self, batch_id: str) -> BatchCounts:
        return await self.inner.counts(batch_id)

    async def apply(self, changes: Sequence[BatchChange]) -> list[ApplyResult]:
        self.calls.append(list(changes))
        bad = [c.event_id for c in changes if c.event_id in self.failing]
        if bad:
            raise ValueError(f"cannot store {bad[0]}")
        return await self.inner.apply(changes)

    async def health(self) -> Any:
        return await self.inner.health()


async def placed_change_that_fails_is_isolated(
    harness: PipelineHarness, repository: FailingFor
) -> None:
    """A change a roster makes by placing a parked result goes through the same poison
    isolation as the roster's own: when it cannot be stored, the roster's message is NOT
    dead-lettered (it is not to blame, and its own change is stored), and the parked result
    stays parked, for a later roster to place once the store takes it."""
    batch, essay = fresh("batch"), fresh("essay")
    waiting = result(essay)
    await harness.fetch(waiting)
    repository.failing = {waiting[1]["event_id"]}

    await harness.fetch(roster(batch, [essay, fresh("essay")]))

    assert harness.dead_letters.sent == []
    counts = await harness.counts(batch)
    assert counts.roster_size == 2
    assert counts.counts_for("spellcheck").succeeded == 0
    assert await parked(harness, essay) == {waiting[1]["event_id"]}
    assert harness.unplaced("failed") == 1
    assert harness.processed(READY, "applied") == 1

    # Once the store takes it, the next roster naming the essay (a redelivery will do) places it.
    repository.failing = set()
    await harness.fetch(roster(batch, [essay]))
    assert (await harness.step(batch, "spellcheck")).roster_succeeded == 1
    assert await parked(harness, essay) == set()


# --- The time rule ---------------------------------------------------------------------------

# When BCS receives the outcome event in these scenarios; BOS reports a second later.
RECEIVED = datetime(2025, 6, 21, 12, 0, tzinfo=UTC)
REPORTED = RECEIVED + timedelta(seconds=1)


async def outcome_then_report(
    repository: BatchStateRepositoryProtocol,
    harness: PipelineHarness,
    *,
    status: str,
    ahead: timedelta,
    report_success: bool,
) -> bool:
    """An ELS outcome of `status` for spellcheck, stamped `ahead` of its arrival, then BOS's
    report over HTTP a second after the arrival (a change without an event id); returns whether
    spellcheck is complete. `harness` must receive at RECEIVED."""
    batch = fresh("batch")
    stamp = (RECEIVED + ahead).isoformat()
    await harness.fetch(
        (OUTCOME, ev.phase_outcome(batch, "spellcheck", status, [], timestamp=stamp))
    )
    assert harness.dead_letters.sent == []
    reports = PhaseReportService(load_pipelines(PIPELINES), repository, clock=lambda: REPORTED)

    await reports.record(batch, "spellcheck", report_success)

    return step_completion("spellcheck", await repository.counts(batch)).complete


TIME_RULE_CASES = [
    # (outcome status, stamped ahead by, BOS reports success, complete at the end)
    ("COMPLETED_SUCCESSFULLY", timedelta(seconds=2), False, False),
    ("COMPLETED_SUCCESSFULLY", timedelta(minutes=30), False, False),
    ("FAILED_CRITICALLY", timedelta(minutes=30), True, True),
    ("FAILED_CRITICALLY", timedelta(seconds=2), True, True),
]
