"""POST /internal/v1/phases/complete carries no event id: repeating a report must still change
nothing. 20,000 identical reports leave a batch exactly as one did: the same
GET /internal/v1/batches/{id} body, the same stored facts (nothing grows)."""

from datetime import UTC, datetime
from typing import Any

import pytest
from quart import Quart

from batch_conductor_service.api.phase_reports import PhaseReportService
from batch_conductor_service.domain.batch_state import (
    BatchChange,
    BatchFacts,
    EssayResult,
    RosterSource,
)
from batch_conductor_service.stores.memory import InMemoryBatchStateRepository
from batch_conductor_service.wiring.providers import app_container
from tests.unit.conftest import AppFactory, repository_provider

REPORTS = 20_000
# Through the route; the rest straight to the service the route calls, to keep the test fast.
OVER_HTTP = 300
COMPLETE = "/internal/v1/phases/complete"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


async def batch_with_history(repository: InMemoryBatchStateRepository) -> None:
    await repository.apply(
        [
            BatchChange(
                "b1", T0, "e1", roster=frozenset({"a", "b"}), roster_source=RosterSource.READY
            ),
            BatchChange(
                "b1",
                T0,
                "e2",
                essays=(
                    EssayResult("a", "spellcheck", succeeded=True),
                    EssayResult("b", "nlp", succeeded=False),
                ),
            ),
        ]
    )


def held(facts: BatchFacts | None) -> tuple[object, ...]:
    """A copy of what the store holds of the batch (its facts are mutated in place)."""
    assert facts is not None
    return (
        {source: set(ids) for source, ids in facts.rosters.items()},
        {step: set(ids) for step, ids in facts.succeeded.items()},
        {step: set(ids) for step, ids in facts.failed.items()},
        dict(facts.outcomes),
        set(facts.event_ids),
        facts.last_event_at,
    )


async def inspect(app: Quart) -> dict[str, Any]:
    response = await app.test_client().get("/internal/v1/batches/b1")
    assert response.status_code == 200
    body: dict[str, Any] = await response.get_json()
    return body


@pytest.mark.parametrize(("step", "success"), [("nlp", True), ("cj_assessment", False)])
async def test_twenty_thousand_identical_reports_leave_the_batch_as_one_did(
    make_app: AppFactory, step: str, success: bool
) -> None:
    repository = InMemoryBatchStateRepository(ttl_seconds=3600)
    await batch_with_history(repository)
    app = make_app(providers=[repository_provider(repository)])
    report = {"batch_id": "b1", "phase_name": step, "success": success}
    async with app.test_app():
        client = app.test_client()
        first = await client.post(COMPLETE, json=report)
        assert first.status_code == 200
        after_one = await inspect(app)
        held_after_one = held(await repository.facts("b1"))

        for _ in range(OVER_HTTP - 1):
            response = await client.post(COMPLETE, json=report)
            assert response.status_code == 200
        service = await app_container(app).get(PhaseReportService)
        for _ in range(REPORTS - OVER_HTTP):
            await service.record("b1", step, success)

        after_all = await inspect(app)
    assert after_all == after_one
    assert held(await repository.facts("b1")) == held_after_one
    # The report itself counted: the step's latest outcome is the one reported.
    [reported] = [s for s in after_one["steps"] if s["step"] == step]
    expected = "COMPLETED_SUCCESSFULLY" if success else "FAILED_CRITICALLY"
    assert reported["latest_batch_outcome"]["status"] == expected
    assert reported["complete"] is success
