"""`bcs-demo`: publishes one sample batch's events and shows spellcheck pruned from the answer.

Talks to a running service: the broker at BCS_KAFKA_BOOTSTRAP_SERVERS and the API at
BCS_DEMO_URL when set, else the broker and service the running `bcs-dev` started (it writes
them to BCS_DEV_STATE_FILE), else localhost:9092 and http://127.0.0.1:4002.
"""

import argparse
import asyncio
import sys
import urllib.error
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from batch_conductor_service import service_version
from batch_conductor_service.cli.targets import (
    TargetUnknownError,
    call_service,
    consumer_group_id,
    kafka_bootstrap_servers,
    service_url,
)
from batch_conductor_service.dev.consumed import wait_until_consumed
from batch_conductor_service.dev.store_health import (
    StoreOutageError,
    check_store,
    raise_if_store_down,
    read_health,
    store_can_fail,
)
from batch_conductor_service.wiring.settings import SettingsError
from common_core.events import (
    BatchEssaysReady,
    BatchEssaysRegistered,
    ContractModel,
    EntityReference,
    EssayProcessingInputRef,
    EventEnvelope,
    SpellcheckResultDataV1,
)
from common_core.topics import Topic

ESSAYS = ("essay-1", "essay-2", "essay-3")


def _envelope(topic: Topic, data: ContractModel) -> bytes:
    envelope = EventEnvelope[ContractModel](
        event_id=str(uuid.uuid4()),
        event_type=topic.value,
        event_timestamp=datetime.now(UTC),
        source_service="bcs_demo",
        correlation_id=str(uuid.uuid4()),
        data=data,
    )
    # Serialised as the payload's own type, not the envelope's declared bound.
    return envelope.model_dump_json(serialize_as_any=True).encode()


def sample_batch(batch_id: str) -> list[tuple[Topic, bytes]]:
    batch_ref = EntityReference(entity_id=batch_id, entity_type="batch")
    events = [
        (
            Topic.BATCH_ESSAYS_REGISTERED,
            _envelope(
                Topic.BATCH_ESSAYS_REGISTERED,
                BatchEssaysRegistered(
                    batch_id=batch_id, expected_essay_count=len(ESSAYS), essay_ids=list(ESSAYS)
                ),
            ),
        ),
        (
            Topic.BATCH_ESSAYS_READY,
            _envelope(
                Topic.BATCH_ESSAYS_READY,
                BatchEssaysReady(
                    batch_id=batch_id,
                    ready_essays=[
                        EssayProcessingInputRef(essay_id=e, text_storage_id=f"text-{e}")
                        for e in ESSAYS
                    ],
                    batch_entity=batch_ref,
                ),
            ),
        ),
    ]
    for essay in ESSAYS:
        result = SpellcheckResultDataV1(
            event_name="essay.spellcheck.completed",
            entity_ref=EntityReference(entity_id=essay, entity_type="essay", parent_id=batch_id),
            status="spellchecked_success",
            corrections_made=2,
        )
        events.append((Topic.SPELLCHECK_COMPLETED, _envelope(Topic.SPELLCHECK_COMPLETED, result)))
    return events


class ServiceRefusedError(Exception):
    """The service refused a request; the message gives its own words."""


def _define(base_url: str, batch_id: str) -> dict[str, Any]:
    url = f"{base_url}/internal/v1/pipelines/define"
    status, answer = call_service(
        url, {"batch_id": batch_id, "requested_pipeline": "cj_assessment"}
    )
    if status != 200:
        error = f"{answer.get('error')}: {answer.get('detail')}"
        raise ServiceRefusedError(f"{url} answered {status} {error}")
    return dict(answer)


def _show(title: str, answer: dict[str, Any]) -> None:
    print(f"\n{title}")
    print(f"  final_pipeline:   {answer['final_pipeline']}")
    print(f"  analysis_summary: {answer['analysis_summary']}")


async def run(bootstrap: str, base_url: str, group_id: str) -> int:
    batch_id = f"demo-batch-{uuid.uuid4().hex[:8]}"
    print(f"batch {batch_id}: {len(ESSAYS)} essays; broker {bootstrap}; service {base_url}")
    # One look at /healthz first: a store that is down would only keep the demo waiting. Only a
    # store that can go down (not the in-memory one) is asked again while the events are
    # consumed, so a demo on `make run`'s defaults makes the same requests every time.
    health = await asyncio.to_thread(read_health, base_url)
    raise_if_store_down(health, base_url)
    watch = _store_watch(base_url) if store_can_fail(health) else None
    before = await asyncio.to_thread(_define, base_url, batch_id)
    _show("Before any events, /define for cj_assessment:", before)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    ends: dict[TopicPartition, int] = {}
    await producer.start()
    try:
        for topic, value in sample_batch(batch_id):
            sent = await producer.send_and_wait(topic.value, value)
            ends[TopicPartition(sent.topic, sent.partition)] = sent.offset + 1
    finally:
        await producer.stop()
    print("\npublished: registered, ready, and a spellcheck result for every essay")
    if not await wait_until_consumed(bootstrap, group_id, ends, check=watch):
        print("bcs-demo: the service did not consume the events within 60 s", file=sys.stderr)
        return 1
    after = await asyncio.to_thread(_define, base_url, batch_id)
    _show("After the events, /define for cj_assessment:", after)
    return 0 if after["final_pipeline"] == ["cj_assessment"] else 1


DESCRIPTION = """\
Publishes one sample batch's events (registered, ready, a spellcheck result for every essay)
to a running service and shows its /define answer for cj_assessment before and after:
spellcheck pruned. It talks to the broker of BCS_KAFKA_BOOTSTRAP_SERVERS and the service at
BCS_DEMO_URL when set, else to those the running bcs-dev started (BCS_DEV_STATE_FILE, default
.bcs-dev.json), else to the service's defaults: localhost:9092 and http://127.0.0.1:4002."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bcs-demo",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {service_version()}")
    return parser


def _store_watch(base_url: str) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        await asyncio.to_thread(check_store, base_url)

    return check


def main(argv: Sequence[str] | None = None) -> None:
    # Before anything else: --help and --version answer without starting anything.
    build_parser().parse_args(argv)
    instead = "set BCS_DEMO_URL and BCS_KAFKA_BOOTSTRAP_SERVERS"
    try:
        bootstrap = kafka_bootstrap_servers(instead=instead)
        base_url = service_url(instead=instead)
    except (SettingsError, TargetUnknownError) as exc:
        print(f"bcs-demo: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(asyncio.run(run(bootstrap, base_url, consumer_group_id())))
    except (StoreOutageError, ServiceRefusedError) as exc:
        print(f"bcs-demo: {exc}", file=sys.stderr)
        sys.exit(1)
    except (urllib.error.URLError, KafkaError, OSError, ValueError) as exc:
        print(f"bcs-demo: is the service running (bcs-dev)? {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
