from datetime import UTC, datetime
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quart.typing import TestClientProtocol as Client

from batch_conductor_service.domain.batch_state import (
    BatchChange,
    EssayResult,
    RosterSource,
    StepOutcome,
)
from batch_conductor_service.stores.memory import InMemoryBatchStateRepository
from common_core.enums import BatchPhaseStatus
from tests.support import change_strategies
from tests.support.hypothesis_profiles import examples
from tests.unit.api.test_pipeline_routes import StoreDown
from tests.unit.conftest import AppFactory, repository_provider

DEFINE = "/internal/v1/pipelines/define"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


async def half_done_batch() -> InMemoryBatchStateRepository:
    repository = InMemoryBatchStateRepository(ttl_seconds=3600)
    await repository.apply(
        [
            BatchChange(
                "b1",
                T0,
                "e1",
                roster=frozenset({"a", "b", "c"}),
                roster_source=RosterSource.READY,
            ),
            BatchChange(
                "b1",
                T1,
                "e2",
                essays=(
                    EssayResult("a", "spellcheck", succeeded=True),
                    EssayResult("b", "spellcheck", succeeded=True),
                    EssayResult("c", "spellcheck", succeeded=False),
                    EssayResult("a", "nlp", succeeded=True),
                ),
            ),
            BatchChange(
                "b1",
                T0,
                "e3",
                outcome_step="cj_assessment",
                outcome=StepOutcome(BatchPhaseStatus.FAILED_CRITICALLY, T0),
            ),
        ]
    )
    return repository


async def test_inspection_shows_roster_steps_outcomes_and_last_event(
    make_app: AppFactory,
) -> None:
    app = make_app(providers=[repository_provider(await half_done_batch())])
    async with app.test_app():
        response = await app.test_client().get("/internal/v1/batches/b1")
        define = await app.test_client().post(
            "/internal/v1/pipelines/define",
            json={"batch_id": "b1", "requested_pipeline": "comprehensive"},
        )
    assert response.status_code == 200
    body = await response.get_json()
    assert body["batch_id"] == "b1"
    assert body["roster"] == {"size": 3, "source": "ready"}
    assert body["last_event_at"] == "2026-03-01T09:30:00Z"
    steps = {step["step"]: step for step in body["steps"]}
    assert [step["step"] for step in body["steps"]] == [
        "spellcheck",
        "nlp",
        "cj_assessment",
        "ai_feedback",
    ]
    assert steps["spellcheck"] == {
        "step": "spellcheck",
        "essays_succeeded": 2,
        "essays_failed": 1,
        "latest_batch_outcome": None,
        "complete": True,
        "reason": "all 3 essays on the roster finished (2 succeeded, 1 failed)",
    }
    assert steps["nlp"]["complete"] is False
    assert steps["nlp"]["reason"] == "1 of 3 essays finished"
    assert steps["cj_assessment"]["latest_batch_outcome"] == {
        "status": "FAILED_CRITICALLY",
        "occurred_at": "2026-03-01T09:00:00Z",
    }
    # The same evidence /define gives for the same batch.
    summary = (await define.get_json())["analysis_summary"]
    assert f"Pruned spellcheck: {steps['spellcheck']['reason']}." in summary
    assert f"nlp is not complete: {steps['nlp']['reason']}." in summary
    assert f"cj_assessment is not complete: {steps['cj_assessment']['reason']}." in summary


async def test_unknown_batch_is_a_404_with_a_json_body(client: Client) -> None:
    response = await client.get("/internal/v1/batches/never-seen")
    assert response.status_code == 404
    body = await response.get_json()
    assert body["error"] == "batch_not_found"
    assert "never-seen" in body["detail"]


async def test_overlong_batch_id_is_a_400(client: Client) -> None:
    response = await client.get("/internal/v1/batches/" + "x" * 256)
    assert response.status_code == 400
    assert (await response.get_json())["error"] == "validation_failed"


async def test_unreadable_store_is_a_503_like_define(make_app: AppFactory) -> None:
    app = make_app(providers=[repository_provider(StoreDown())])
    async with app.test_app():
        response = await app.test_client().get("/internal/v1/batches/b1")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    assert (await response.get_json())["error"] == "state_store_unavailable"


async def test_a_batch_id_with_control_characters_is_a_400(client: Client) -> None:
    response = await client.get("/internal/v1/batches/b%001")
    assert response.status_code == 400


def expected_counts(
    changes: list[BatchChange],
) -> tuple[dict[str, object] | None, dict[str, tuple[int, int]]]:
    """What the changes say of the roster and each step's essays, worked out from them alone
    (every change carries its own event id or none, so each one's roster and essays count)."""
    rosters: dict[RosterSource, set[str]] = {}
    succeeded: dict[str, set[str]] = {}
    failed: dict[str, set[str]] = {}
    for change in changes:
        if change.roster is not None and change.roster_source is not None:
            rosters.setdefault(change.roster_source, set()).update(change.roster)
        for result in change.essays:
            (succeeded if result.succeeded else failed).setdefault(result.step, set()).add(
                result.essay_id
            )
    source = next((s for s in (RosterSource.READY, RosterSource.REGISTERED) if s in rosters), None)
    roster = None if source is None else {"size": len(rosters[source]), "source": source.value}
    steps = {
        step: (
            len(succeeded.get(step, set())),
            len(failed.get(step, set()) - succeeded.get(step, set())),
        )
        for step in ("spellcheck", "nlp", "cj_assessment", "ai_feedback")
    }
    return roster, steps


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=st.lists(change_strategies.changes(batch_id="b1"), min_size=1, max_size=8))
async def test_inspection_reads_the_batch_as_define_does(
    make_app: AppFactory, changes: list[BatchChange]
) -> None:
    """Whatever the batch went through: the inspect path shows the roster and essay counts the
    changes made, and calls a step complete exactly when /define prunes it, for the same
    reason."""
    repository = InMemoryBatchStateRepository(ttl_seconds=3600)
    await repository.apply(changes)
    app = make_app(providers=[repository_provider(repository)])
    async with app.test_app():
        response = await app.test_client().get("/internal/v1/batches/b1")
        define = await app.test_client().post(
            DEFINE, json={"batch_id": "b1", "requested_pipeline": "comprehensive"}
        )
    assert response.status_code == 200
    body = await response.get_json()
    resolution = await define.get_json()
    roster, counts = expected_counts(changes)
    assert body["roster"] == roster
    assert [s["step"] for s in body["steps"]] == list(counts)
    pruned = {p["step"]: p["reason"] for p in resolution["pruned_steps"]}
    for step in body["steps"]:
        assert (step["essays_succeeded"], step["essays_failed"]) == counts[step["step"]]
        assert step["complete"] is (step["step"] in pruned)
        if step["complete"]:
            assert pruned[step["step"]] == step["reason"]
        else:
            assert step["step"] in resolution["final_pipeline"]
        reported = {
            c.outcome.status.value for c in changes if c.outcome_step == step["step"] and c.outcome
        }
        outcome = step["latest_batch_outcome"]
        assert (outcome is None) is (not reported)
        if outcome is not None:
            assert outcome["status"] in reported
    applied_at = [c.occurred_at for c in changes if c.event_id is not None]
    last = datetime.fromisoformat(body["last_event_at"])
    assert last <= max(c.occurred_at for c in changes)
    assert not applied_at or last >= max(applied_at)


# Segments of printable characters, "." and ".." among them; empty ones make "//", a leading
# or a trailing "/".
_segment = st.one_of(
    st.sampled_from(["", ".", "..", "%2F", "a b", "?", "#"]),
    st.text(st.characters(categories=["L", "N", "P", "S"]), max_size=8),
)
batch_ids_with_slashes = (
    st.lists(_segment, min_size=2, max_size=5)
    .map("/".join)
    .filter(lambda batch_id: batch_id.strip() == batch_id and batch_id != "/" * len(batch_id))
)


@settings(
    max_examples=examples(100),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch_id=batch_ids_with_slashes)
async def test_a_batch_id_with_slashes_is_inspected_whether_they_are_encoded_or_not(
    make_app: AppFactory, batch_id: str
) -> None:
    repository = InMemoryBatchStateRepository(ttl_seconds=3600)
    roster = frozenset({"a"})
    await repository.apply(
        [BatchChange(batch_id, T0, "e1", roster=roster, roster_source=RosterSource.READY)]
    )
    app = make_app(providers=[repository_provider(repository)])
    async with app.test_app():
        client = app.test_client()
        for safe in ("", "/"):
            response = await client.get("/internal/v1/batches/" + quote(batch_id, safe=safe))
            assert response.status_code == 200, (batch_id, safe, response.status_code)
            assert (await response.get_json())["batch_id"] == batch_id
