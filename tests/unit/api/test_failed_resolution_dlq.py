import asyncio
import json
from typing import Any

from dishka import Provider, Scope
from prometheus_client import CollectorRegistry

from batch_conductor_service.dead_letter.resolution_sender import FailedResolutionDeadLetters
from batch_conductor_service.domain.batch_state import BatchCounts
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import DlqProducerProtocol
from batch_conductor_service.stores.memory import (
    InMemoryBatchStateRepository,
)
from tests.support.recording_dlq import RecordingDlqProducer
from tests.unit.conftest import AppFactory, repository_provider

DEFINE = "/internal/v1/pipelines/define"
RESOLUTION_TOPIC = "huleedu.bcs.pipeline.resolution.v1"
BODY = b'{"batch_id": "b1", "requested_pipeline": "nlp"}'
INTERNAL_ERROR = {"error": "internal_error", "detail": "an unexpected error occurred"}


class Buggy(InMemoryBatchStateRepository):
    def __init__(self) -> None:
        super().__init__(ttl_seconds=3600)

    async def counts(self, batch_id: str) -> BatchCounts:
        raise KeyError("secret internal detail")


class StoreDown(InMemoryBatchStateRepository):
    def __init__(self) -> None:
        super().__init__(ttl_seconds=3600)

    async def counts(self, batch_id: str) -> BatchCounts:
        raise StateStoreUnavailableError("redis", "connection refused")


class HangingDlqProducer:
    async def send(self, **_: Any) -> None:
        await asyncio.Event().wait()


def dlq_provider(dead_letters: object) -> Provider:
    provider = Provider(scope=Scope.APP)
    provider.provide(lambda: dead_letters, provides=DlqProducerProtocol)
    return provider


async def post_define(
    make_app: AppFactory,
    repository: InMemoryBatchStateRepository,
    dead_letters: object,
    body: bytes = BODY,
    **settings: object,
) -> tuple[int, dict[str, Any]]:
    app = make_app(
        providers=[repository_provider(repository), dlq_provider(dead_letters)], **settings
    )
    async with app.test_app():
        response = await app.test_client().post(
            DEFINE,
            data=body,
            headers={"Content-Type": "application/json", "X-Correlation-ID": "corr-500"},
        )
        return response.status_code, json.loads(await response.get_data())


async def test_a_bug_in_define_dead_letters_the_request_once_for_replay(
    make_app: AppFactory,
) -> None:
    dead_letters = RecordingDlqProducer()

    status, _ = await post_define(make_app, Buggy(), dead_letters)

    assert status == 500
    [record] = dead_letters.sent
    assert record.reason == "resolution_failed"
    assert record.original_topic == RESOLUTION_TOPIC
    assert record.payload == BODY
    assert "KeyError" in record.error
    assert record.correlation_id == "corr-500"
    assert (record.partition, record.offset) == (None, None)


async def test_the_correlation_id_from_the_body_is_the_one_dead_lettered(
    make_app: AppFactory,
) -> None:
    dead_letters = RecordingDlqProducer()
    body = b'{"batch_id": "b1", "requested_pipeline": "nlp", "correlation_id": "from-body"}'

    await post_define(make_app, Buggy(), dead_letters, body)

    [record] = dead_letters.sent
    assert record.correlation_id == "from-body"
    assert record.payload == body


async def test_a_failing_dead_letter_topic_leaves_the_500_unchanged(
    make_app: AppFactory,
) -> None:
    dead_letters = RecordingDlqProducer(failing=True)

    status, body = await post_define(make_app, Buggy(), dead_letters)

    assert (status, body) == (500, INTERNAL_ERROR)
    assert dead_letters.sent == []


async def test_a_dead_letter_topic_that_does_not_answer_leaves_the_500_unchanged(
    make_app: AppFactory,
) -> None:
    status, body = await post_define(
        make_app, Buggy(), HangingDlqProducer(), RESOLUTION_DLQ_TIMEOUT_SECONDS=0.01
    )

    assert (status, body) == (500, INTERNAL_ERROR)


async def test_a_store_outage_is_a_503_and_is_not_dead_lettered(make_app: AppFactory) -> None:
    dead_letters = RecordingDlqProducer()

    status, _ = await post_define(make_app, StoreDown(), dead_letters)

    assert status == 503
    assert dead_letters.sent == []


async def test_a_bad_request_is_a_400_and_is_not_dead_lettered(make_app: AppFactory) -> None:
    dead_letters = RecordingDlqProducer()

    status, _ = await post_define(make_app, Buggy(), dead_letters, b'{"batch_id": "b1"}')

    assert status == 400
    assert dead_letters.sent == []


async def test_a_successful_define_is_not_dead_lettered(make_app: AppFactory) -> None:
    dead_letters = RecordingDlqProducer()
    repository = InMemoryBatchStateRepository(ttl_seconds=3600)

    status, _ = await post_define(make_app, repository, dead_letters)

    assert status == 200
    assert dead_letters.sent == []


class GatedDlqProducer(RecordingDlqProducer):
    """Holds every send until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = 0

    async def send(self, **kw: Any) -> None:
        self.waiting += 1
        await self.gate.wait()
        await super().send(**kw)


async def test_the_500_does_not_wait_for_the_dead_letter_to_be_sent(
    make_app: AppFactory,
) -> None:
    dead_letters = GatedDlqProducer()
    app = make_app(providers=[repository_provider(Buggy()), dlq_provider(dead_letters)])
    async with app.test_app():
        response = await app.test_client().post(DEFINE, data=BODY)
        assert response.status_code == 500
        # Answered while the send is still held at the gate.
        assert dead_letters.waiting == 1
        assert dead_letters.sent == []
        dead_letters.gate.set()
    [record] = dead_letters.sent
    assert record.payload == BODY


async def test_failed_resolutions_beyond_the_rate_are_counted_not_dead_lettered(
    make_app: AppFactory,
) -> None:
    dead_letters = RecordingDlqProducer()
    registry = CollectorRegistry()
    app = make_app(
        providers=[repository_provider(Buggy()), dlq_provider(dead_letters)],
        registry=registry,
        RESOLUTION_DLQ_PER_MINUTE=3,
    )
    async with app.test_app():
        client = app.test_client()
        statuses = [(await client.post(DEFINE, data=BODY)).status_code for _ in range(10)]
    assert statuses == [500] * 10
    dropped = registry.get_sample_value("bcs_resolution_dead_letters_dropped_total")
    assert dropped is not None
    assert dropped >= 1
    assert len(dead_letters.sent) + dropped == 10


async def test_the_rate_is_a_bucket_of_per_minute_records_refilled_evenly() -> None:
    now = [0.0]
    dead_letters = RecordingDlqProducer()
    sender = FailedResolutionDeadLetters(
        dead_letters,
        BcsMetrics(CollectorRegistry()),
        per_minute=3,
        timeout_seconds=1.0,
        clock=lambda: now[0],
    )

    accepted = [sender.submit(b"{}", "KeyError", None) for _ in range(5)]
    now[0] = 19.0
    early = sender.submit(b"{}", "KeyError", None)
    now[0] = 20.0
    refilled = sender.submit(b"{}", "KeyError", None)
    await sender.close()

    assert accepted == [True, True, True, False, False]
    assert (early, refilled) == (False, True)
    assert len(dead_letters.sent) == 4
