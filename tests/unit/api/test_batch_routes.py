from datetime import UTC, datetime
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quart.typing import TestClientProtocol as Client

from batch_conductor_service.domain.batch_state import (
    BatchOutcome,
    BatchStateChange,
    EssayOutcome,
    EssayStepOutcome,
    RosterSource,
)
from batch_conductor_service.stores.memory import InMemoryBatchStateRepository
from common_core.enums import BatchPhaseStatus
from tests.unit.api.test_pipeline_routes import StoreDown
from tests.unit.conftest import AppFactory, repository_provider

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def essay(essay_id: str, step: str, outcome: EssayOutcome) -> EssayStepOutcome:
    return EssayStepOutcome(essay_id, step, outcome)


async def half_done_batch() -> InMemoryBatchStateRepository:
    repository = InMemoryBatchStateRepository(ttl_seconds=3600)
    await repository.apply_many(
        [
            BatchStateChange(
                "e1", "b1", T0, roster=frozenset({"a", "b", "c"}), roster_source=RosterSource.READY
            ),
            BatchStateChange(
                "e2",
                "b1",
                T1,
                essay_outcomes=(
                    essay("a", "spellcheck", EssayOutcome.SUCCEEDED),
                    essay("b", "spellcheck", EssayOutcome.SUCCEEDED),
                    essay("c", "spellcheck", EssayOutcome.FAILED),
                    essay("a", "nlp", EssayOutcome.SUCCEEDED),
                ),
            ),
            BatchStateChange(
                "e3",
                "b1",
                T0,
                batch_outcome_step="cj_assessment",
                batch_outcome=BatchOutcome(BatchPhaseStatus.FAILED_CRITICALLY, T0),
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
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch_id=batch_ids_with_slashes)
async def test_a_batch_id_with_slashes_is_inspected_whether_they_are_encoded_or_not(
    make_app: AppFactory, batch_id: str
) -> None:
    repository = InMemoryBatchStateRepository(ttl_seconds=3600)
    roster = frozenset({"a"})
    await repository.apply_many(
        [BatchStateChange("e1", batch_id, T0, roster=roster, roster_source=RosterSource.READY)]
    )
    app = make_app(providers=[repository_provider(repository)])
    async with app.test_app():
        client = app.test_client()
        for safe in ("", "/"):
            response = await client.get("/internal/v1/batches/" + quote(batch_id, safe=safe))
            assert response.status_code == 200, (batch_id, safe, response.status_code)
            assert (await response.get_json())["batch_id"] == batch_id
