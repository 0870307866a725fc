"""End to end over the bundled broker, Redis and PostgreSQL: the HuleEdu platform's recorded
messages of both generations, mixed over several batches, then /define asked as both BOS
generations ask it, and phases/complete as the current BOS reports. Every answer is checked,
and no message of these batches is dead-lettered."""

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest
from quart.typing import TestClientProtocol as HttpClient
from redis.asyncio import Redis

from batch_conductor_service.consumer.translation import CONSUMED_TOPICS
from batch_conductor_service.wiring.app import create_app
from common_core.topics import CurrentTopic, Topic, dlq_topic
from tests.conftest import service_missing
from tests.integration.kafka.kafka_support import Publisher, eventually, kafka_settings, read_topic
from tests.support import event_factory as ev
from tests.support import huleedu_fixtures as hf

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("BCS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get("BCS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
DEFINE = "/internal/v1/pipelines/define"

# The ids the recorded messages use, which each scenario maps to ids of its own.
RESULT_BATCH = "5f3b2c1e-8d4a-4e6b-9a7c-2e1f0d9c8b7a"
RESULT_ESSAYS = [f"a1b2c3d4-000{i}-4e5f-8a9b-0c1d2e3f4a0{i}" for i in (1, 2, 3)]
ROSTER_BATCH = "batch-7f3c2a10"
ROSTER_ESSAYS = ["essay-1", "essay-2", "essay-3"]
SEED = "seed-era/"
CURRENT = "current/"


class Scenario:
    """One batch: a fresh batch id and three fresh essay ids, put into recorded messages."""

    def __init__(self, name: str) -> None:
        tag = uuid.uuid4().hex[:10]
        self.batch = f"{name}-{tag}"
        self.essays = [f"{name}-essay-{tag}-{i}" for i in range(3)]

    def load(self, fixture: str, as_essay: int | None = None) -> hf.Fixture:
        """`as_essay`: the fixture's one essay becomes this scenario's essay of that index."""
        ids = {RESULT_BATCH: self.batch, ROSTER_BATCH: self.batch}
        ids |= dict(zip(RESULT_ESSAYS, self.essays, strict=True))
        ids |= dict(zip(ROSTER_ESSAYS, self.essays, strict=True))
        # The ready roster's storage ids are named after the essays; keep them apart too.
        ids |= {f"s-{e}": f"s-{n}" for e, n in zip(ROSTER_ESSAYS, self.essays, strict=True)}
        if as_essay is not None:
            ids |= {essay: self.essays[as_essay] for essay in RESULT_ESSAYS}
        return hf.load(fixture, ids)


async def publish(producer: Publisher, fixture: hf.Fixture, topic: str | None = None) -> None:
    await producer.raw(topic or fixture.topic, fixture.wire())


async def define(client: HttpClient, body: dict[str, Any]) -> tuple[int, Any]:
    response = await client.post(DEFINE, json=body)
    return response.status_code, await response.get_json()


def seed_bos(batch: str, pipeline: str) -> dict[str, Any]:
    return {"batch_id": batch, "requested_pipeline": pipeline}


def current_bos(batch: str, pipeline: str, prompt: bool = True) -> dict[str, Any]:
    return {
        "batch_id": batch,
        "requested_pipeline": pipeline,
        "correlation_id": str(uuid.uuid4()),
        "batch_metadata": {"prompt_attached": prompt, "prompt_source": "cms"},
    }


@pytest.fixture
async def durable_settings(kafka_bootstrap: str) -> AsyncIterator[dict[str, Any]]:
    prefix = f"bcs-e2e-{uuid.uuid4().hex[:10]}"
    schema = f"bcs_e2e_{uuid.uuid4().hex[:10]}"
    redis = Redis.from_url(REDIS_URL, decode_responses=True, socket_connect_timeout=1)
    try:
        await redis.ping()
        connection = await asyncpg.connect(DATABASE_URL, timeout=2)
    except (OSError, asyncpg.PostgresError, ConnectionError) as exc:
        await redis.aclose()
        service_missing(f"Redis or PostgreSQL ({exc})")
        raise AssertionError("unreachable") from exc
    yield {
        "ENVIRONMENT": "development",
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": prefix,
        "DATABASE_URL": DATABASE_URL,
        "DATABASE_SCHEMA": schema,
    }
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await redis.unlink(*keys)
    await redis.aclose()
    await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await connection.close()


async def test_both_generations_mixed_over_several_batches_on_redis_and_postgresql(
    kafka_bootstrap: str, producer: Publisher, durable_settings: dict[str, Any]
) -> None:
    seed, current, mixed = Scenario("seed"), Scenario("current"), Scenario("mixed")

    # Seed era: the real spell checker's results (no batch id) arrive before the roster.
    # Two successes and a failure, all with parent_id null, as the real producer sends them.
    for index, name in enumerate(["", "", ".failed"]):
        fixture = seed.load(f"{SEED}huleedu.essay.spellcheck.completed.v1{name}.json", index)
        assert fixture.at("data.entity_ref.parent_id") is None
        await publish(producer, fixture)
    await producer.event(Topic.BATCH_ESSAYS_REGISTERED, ev.registered(seed.batch, seed.essays))
    await producer.event(Topic.BATCH_ESSAYS_READY, ev.ready(seed.batch, seed.essays))
    await publish(producer, seed.load(f"{SEED}huleedu.cj_assessment.completed.v1.json"))

    # Current: every message in its current format, on its current topic.
    await publish(producer, current.load(f"{CURRENT}huleedu.batch.essays.registered.v1.json"))
    await publish(producer, current.load(f"{CURRENT}huleedu.els.batch.essays.ready.v1.json"))
    spellcheck = f"{CURRENT}huleedu.batch.spellcheck.phase.completed.v1"
    for index, name in enumerate([".json", ".json", ".failed.json"]):
        await publish(producer, current.load(spellcheck + name, index))
    await publish(producer, current.load(f"{CURRENT}huleedu.cj_assessment.completed.v1.json"))
    await publish(
        producer,
        current.load(
            f"{CURRENT}huleedu.els.batch.phase.outcome.v1.cj_assessment_with_failures.json"
        ),
    )

    # Mixed: a current roster, seed-era results placed by it, a seed-era (upper-case) outcome
    # on the current topic name, saying nlp failed.
    await publish(producer, mixed.load(f"{CURRENT}huleedu.els.batch.essays.ready.v1.json"))
    for index, name in enumerate(["", ".failed", ".parent_id_set"]):
        await publish(
            producer, mixed.load(f"{SEED}huleedu.essay.spellcheck.completed.v1{name}.json", index)
        )
    nlp_failed = mixed.load(f"{SEED}huleedu.els.batch_phase.outcome.v1.json")
    nlp_failed.document["data"] |= {"phase_name": "nlp", "phase_status": "FAILED_CRITICALLY"}
    await publish(producer, nlp_failed, CurrentTopic.BATCH_PHASE_OUTCOME)

    app = create_app(kafka_settings(kafka_bootstrap, **durable_settings))
    async with app.test_app() as test_app:
        client = test_app.test_client()

        async def pipeline(body: dict[str, Any]) -> Any:
            status, answer = await define(client, body)
            return answer["final_pipeline"] if status == 200 else (status, answer)

        # The last event of each batch shows in its answer once it is consumed.
        assert (
            await eventually(
                lambda: pipeline(seed_bos(seed.batch, "cj_assessment")), lambda s: s == []
            )
            == []
        )
        assert await eventually(
            lambda: pipeline(current_bos(current.batch, "ai_feedback")),
            lambda s: s == ["nlp", "ai_feedback"],
        )
        assert await eventually(
            lambda: pipeline(seed_bos(mixed.batch, "ai_feedback")),
            lambda s: s == ["nlp", "ai_feedback"],
        )

        # Every other answer, both BOS generations.
        assert await pipeline(seed_bos(seed.batch, "ai_feedback")) == ["nlp", "ai_feedback"]
        assert await pipeline(current_bos(seed.batch, "nlp")) == ["nlp"]
        assert await pipeline(current_bos(current.batch, "cj_assessment")) == []
        assert await pipeline(seed_bos(current.batch, "comprehensive")) == ["nlp", "ai_feedback"]
        assert await pipeline(current_bos(mixed.batch, "cj_assessment")) == ["cj_assessment"]
        status, refusal = await pipeline(current_bos(current.batch, "nlp", prompt=False))
        assert (status, refusal["error"]) == (400, "precondition_failed")

        # phases/complete as the current BOS reports it, on a batch no event has named.
        reported = Scenario("reported").batch
        report = {"batch_id": reported, "phase_name": "spellcheck", "success": True}
        response = await client.post("/internal/v1/phases/complete", json=report)
        assert (response.status_code, (await response.get_json())["status"]) == (200, "recorded")
        assert await pipeline(seed_bos(reported, "cj_assessment")) == ["cj_assessment"]
        await client.post("/internal/v1/phases/complete", json={**report, "success": False})
        assert await pipeline(seed_bos(reported, "cj_assessment")) == [
            "spellcheck",
            "cj_assessment",
        ]

    markers = [s.batch for s in (seed, current, mixed)] + [
        e for s in (seed, current, mixed) for e in s.essays
    ]
    for topic in CONSUMED_TOPICS:
        records = [orjson.loads(v) for v in await read_topic(kafka_bootstrap, dlq_topic(topic))]
        ours = [r for r in records if any(m in r["original_payload"] for m in markers)]
        assert ours == [], topic
