"""`bcs dlq list`, `bcs dlq replay` and `bcs inspect` against `bcs-dev` and its bundled broker,
found through bcs-dev's state file as an operator at the same machine would."""

import asyncio
import json
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from batch_conductor_service.dev.demo import sample_batch
from batch_conductor_service.dev.embedded_broker import free_port
from common_core.events import DeadLetterRecord
from common_core.topics import Topic, dlq_topic
from tests.e2e.conftest import BIN, RunningService, run_tool, start_service, stop_if_running

SPELLCHECK = Topic.SPELLCHECK_COMPLETED.value


def bcs(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = run_tool(
        [str(BIN / "bcs"), *args], {"BCS_DEV_STATE_FILE": str(tmp_path / "bcs-dev.json")}
    )
    return result.returncode, result.stdout, result.stderr


def until(check: Any, what: str) -> Any:
    for _ in range(300):
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


async def publish(bootstrap: str, messages: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic, value in messages:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


async def end_offset(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


def dead_letter(payload: bytes, offset: int) -> bytes:
    """What the service sends when storing an event failed on every try."""
    text, encoding = DeadLetterRecord.encode_payload(payload)
    record = DeadLetterRecord(
        original_payload=text,
        original_payload_encoding=encoding,
        original_topic=SPELLCHECK,
        original_partition=0,
        original_offset=offset,
        reason="processing_failed",
        error="store rejected the write",
        failing_service="batch_conductor_service",
        failed_at=datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
    )
    return record.model_dump_json().encode()


def test_dead_letters_listed_replayed_and_the_batch_inspected(
    dev_service: RunningService, tmp_path: Path
) -> None:
    bootstrap = json.loads((tmp_path / "bcs-dev.json").read_text())["bootstrap_servers"]
    batch_id = f"ops-{time.time_ns()}"
    events = sample_batch(batch_id)
    roster_events = [(topic.value, value) for topic, value in events[:2]]
    results = [value for _, value in events[2:]]
    # The roster arrives; the spellcheck results went to the DLQ earlier (as if a store had
    # failed); the service itself dead-letters a message that is not JSON.
    asyncio.run(
        publish(
            bootstrap,
            [
                *roster_events,
                *((dlq_topic(SPELLCHECK), dead_letter(v, i)) for i, v in enumerate(results)),
                (SPELLCHECK, b"not json"),
            ],
        )
    )

    def listed() -> list[dict[str, Any]]:
        code, out, err = bcs(tmp_path, "dlq", "list", SPELLCHECK, "--json")
        assert code == 0, err
        records: list[dict[str, Any]] = json.loads(out)
        return records if len(records) == 4 else []

    records = until(listed, "the service dead-letters the message that is not JSON")
    by_reason = {
        reason: [r for r in records if r["reason"] == reason]
        for reason in ("processing_failed", "invalid_json")
    }
    assert [(r["partition"], r["offset"]) for r in by_reason["processing_failed"]] == [
        (0, 0),
        (0, 1),
        (0, 2),
    ]
    (service_record,) = by_reason["invalid_json"]
    # The service's producer picks the DLQ partition; a record shows as P:O off partition 0.
    shown_at = (
        str(service_record["offset"])
        if service_record["partition"] == 0
        else f"{service_record['partition']}:{service_record['offset']}"
    )
    assert service_record["original_payload"] == "not json"
    assert (service_record["original_partition"], service_record["original_offset"]) == (0, 0)
    assert service_record["error"]

    code, table, _ = bcs(tmp_path, "dlq", "list", SPELLCHECK, "--reason", "invalid_json")
    assert code == 0
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["OFFSET", "FAILED", "AT"]
    assert len(lines) == 3
    assert lines[1].split()[0] == shown_at
    assert "invalid_json" in lines[1]
    assert " 0:0 " in lines[1]
    assert lines[2] == f"1 record(s) in {SPELLCHECK}.DLQ with reason invalid_json"

    def inspected() -> dict[str, Any]:
        code, out, _ = bcs(tmp_path, "inspect", batch_id, "--json")
        return json.loads(out) if code == 0 else {}

    before = until(inspected, "the roster is applied")
    assert before["roster"] == {"size": 3, "source": "ready"}
    spellcheck = before["steps"][0]
    assert (spellcheck["step"], spellcheck["essays_succeeded"], spellcheck["complete"]) == (
        "spellcheck",
        0,
        False,
    )

    topic_end = asyncio.run(end_offset(bootstrap, SPELLCHECK))
    code, dry, _ = bcs(
        tmp_path, "dlq", "replay", SPELLCHECK, "--reason", "processing_failed", "--dry-run"
    )
    assert code == 0
    assert dry.splitlines()[-1] == f"dry run: 3 of 3 selected record(s) would go to {SPELLCHECK}"
    assert asyncio.run(end_offset(bootstrap, SPELLCHECK)) == topic_end

    code, one, _ = bcs(
        tmp_path,
        "dlq",
        "replay",
        SPELLCHECK,
        "--partition",
        "0",
        "--from-offset",
        "1",
        "--to-offset",
        "1",
        "--dry-run",
    )
    assert code == 0
    assert one.splitlines()[0].startswith("would send offset 1: processing_failed")

    for _ in range(2):  # replaying twice is safe: the second one is all duplicates
        code, out, _ = bcs(tmp_path, "dlq", "replay", SPELLCHECK, "--reason", "processing_failed")
        assert code == 0
        assert out.splitlines()[-1] == f"replayed 3 of 3 selected record(s) to {SPELLCHECK}"

    def pruned() -> dict[str, Any]:
        batch = inspected()
        return batch if batch and batch["steps"][0]["complete"] else {}

    after = until(pruned, "the replayed results are applied")
    assert after["steps"][0]["essays_succeeded"] == 3
    assert after["steps"][0]["reason"] == (
        "all 3 essays on the roster finished (3 succeeded, 0 failed)"
    )
    assert after["last_event_at"] is not None
    code, terminal, _ = bcs(tmp_path, "inspect", batch_id)
    assert code == 0
    assert f"batch {batch_id}" in terminal
    assert "3 essays (from the ready event)" in terminal
    row = next(line for line in terminal.splitlines() if line.strip().startswith("spellcheck"))
    assert row.split()[:3] == ["spellcheck", "3", "0"]
    assert " yes " in row

    def duplicates() -> bool:
        _, _, body = dev_service.request("GET", "/metrics")
        line = f'bcs_events_processed_total{{event_type="{SPELLCHECK}",outcome="duplicate"}} 3.0'
        return line in body.decode()

    until(duplicates, "the second replay is counted as three duplicates")


def test_unknown_batch_and_empty_dead_letter_topic(
    dev_service: RunningService, tmp_path: Path
) -> None:
    code, _, err = bcs(tmp_path, "inspect", "never-seen")
    assert code == 1
    assert err.startswith("bcs: 404 batch_not_found: BCS holds no state for batch 'never-seen'")
    # A topic BCS dead-letters from, with nothing dead-lettered yet.
    for topic in (SPELLCHECK, Topic.PIPELINE_RESOLUTION.value):
        code, out, _ = bcs(tmp_path, "dlq", "list", topic)
        assert code == 0
        assert out.strip() == f"{topic}.DLQ: no dead-letter records"
        code, out, _ = bcs(tmp_path, "dlq", "list", topic, "--json")
        assert json.loads(out) == []


def test_a_topic_bcs_never_dead_letters_is_an_error_naming_the_topics_there(
    dev_service: RunningService, tmp_path: Path
) -> None:
    bootstrap = json.loads((tmp_path / "bcs-dev.json").read_text())["bootstrap_servers"]
    asyncio.run(publish(bootstrap, [(dlq_topic(SPELLCHECK), dead_letter(b"{}", 0))]))
    for command in (["list"], ["list", "--json"], ["replay", "--dry-run"]):
        code, out, err = bcs(
            tmp_path, "dlq", command[0], "huleedu.essay.spelcheck.completed.v1", *command[1:]
        )
        assert code == 1
        assert out == ""
        (line,) = err.splitlines()
        assert line.startswith(
            "bcs: BCS dead-letters nothing from huleedu.essay.spelcheck.completed.v1, and the "
            f"broker at {bootstrap} has no huleedu.essay.spelcheck.completed.v1.DLQ. "
            f"Dead-lettered topics there: {SPELLCHECK}. Topics BCS dead-letters from: "
        )
        assert Topic.PIPELINE_RESOLUTION.value in line


def test_commands_say_plainly_when_nothing_answers(tmp_path: Path) -> None:
    code, _, err = bcs(tmp_path, "inspect", "b1", "--url", "http://127.0.0.1:1")
    assert code == 1
    assert err.startswith("bcs: cannot ask the service at http://127.0.0.1:1:")
    code, _, err = bcs(tmp_path, "dlq", "list", "t", "--bootstrap-servers", "127.0.0.1:1")
    assert code == 1
    assert err.startswith("bcs: cannot read from Kafka at 127.0.0.1:1:")


def test_inspect_sends_the_internal_api_key_the_service_requires(tmp_path: Path) -> None:
    # Not Latin-1: the CLI sends it as UTF-8 and the service compares UTF-8 bytes.
    key = {"BCS_INTERNAL_API_KEY": "s3cret-ops-ключ"}
    platform_key = {"HULEEDU_INTERNAL_API_KEY": key["BCS_INTERNAL_API_KEY"]}
    service = start_service(
        [sys.executable, "-m", "batch_conductor_service"],
        {"BCS_USE_MOCK_REPOSITORY": "true", "BCS_KAFKA_CONSUMER_ENABLED": "false", **key},
        free_port(),
        tmp_path / "service.log",
    )
    try:
        command = [str(BIN / "bcs"), "inspect", "b1", "--url", service.base_url]
        with_key = run_tool(command, key)
        # Neither the service nor its CLI reads the platform-wide key.
        with_platform_key = run_tool(command, platform_key)
    finally:
        stop_if_running(service)
    assert with_key.stderr.startswith("bcs: 404 batch_not_found")
    assert with_platform_key.stderr.startswith("bcs: 401 unauthorized")


def test_a_planted_dev_state_file_sends_nothing_to_the_address_it_names(tmp_path: Path) -> None:
    """A `.bcs-dev.json` that no bcs-dev of yours wrote (here naming pid 1, which runs and is
    no bcs-dev) must not receive the internal API key: the commands ask to be told instead."""
    received: list[dict[str, str]] = []

    class Recording(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append(dict(self.headers))
            body = json.dumps({"error": "batch_not_found", "detail": "none here"}).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    state_file = tmp_path / "planted.json"
    state_file.write_text(
        json.dumps(
            {"pid": 1, "broker_pid": None, "bootstrap_servers": "127.0.0.1:1", "service_url": url}
        )
    )
    env = {"BCS_DEV_STATE_FILE": str(state_file), "BCS_INTERNAL_API_KEY": "s3cret-ops-key"}
    try:
        inspected = run_tool([str(BIN / "bcs"), "inspect", "b1"], env)
        listed = run_tool([str(BIN / "bcs"), "dlq", "list", SPELLCHECK], env)
        demo = run_tool([str(BIN / "bcs-demo")], env)
        told = run_tool([str(BIN / "bcs"), "inspect", "b1", "--url", url], env)
    finally:
        server.shutdown()
        server.server_close()
    refused = f"not using {state_file}: its pid 1 cannot be a bcs-dev"
    assert (inspected.returncode, inspected.stderr) == (
        2,
        f"bcs: {refused}; pass --url (or set BCS_DEMO_URL)\n",
    )
    assert (listed.returncode, listed.stderr) == (
        1,
        f"bcs: {refused}; pass --bootstrap-servers (or set BCS_KAFKA_BOOTSTRAP_SERVERS)\n",
    )
    assert (demo.returncode, demo.stderr) == (
        2,
        f"bcs-demo: {refused}; set BCS_DEMO_URL and BCS_KAFKA_BOOTSTRAP_SERVERS\n",
    )
    # Only the command told where to go went there.
    assert told.stderr.startswith("bcs: 404 batch_not_found")
    assert len(received) == 1


def test_replaying_poison_that_fails_again_leaves_one_record_per_message(
    dev_service: RunningService, tmp_path: Path
) -> None:
    """Each replay's messages fail as before; their records stay, and none is added."""
    bootstrap = json.loads((tmp_path / "bcs-dev.json").read_text())["bootstrap_servers"]
    poison = [(SPELLCHECK, f"not json {i}".encode()) for i in range(3)]
    asyncio.run(publish(bootstrap, poison))

    def listed() -> list[dict[str, Any]]:
        code, out, err = bcs(tmp_path, "dlq", "list", SPELLCHECK, "--json")
        assert code == 0, err
        records: list[dict[str, Any]] = json.loads(out)
        return records

    first = until(lambda: (found := listed()) and len(found) == 3 and found, "3 dead-lettered")

    def failed_again(times: int) -> bool:
        _, _, body = dev_service.request("GET", "/metrics")
        line = f'bcs_events_processed_total{{event_type="{SPELLCHECK}",outcome="replay_failed"}}'
        return f"{line} {float(times)}" in body.decode()

    for replayed in (1, 2):
        code, out, _ = bcs(tmp_path, "dlq", "replay", SPELLCHECK)
        assert code == 0
        assert out.splitlines()[-1] == f"replayed 3 of 3 selected record(s) to {SPELLCHECK}"
        until(lambda n=replayed: failed_again(3 * n), f"replay {replayed} fails again")
        assert listed() == first
    logged = [
        line
        for line in dev_service.log_lines()
        if line.get("event") == "replayed_event_failed_again"
    ]
    dlq = dlq_topic(SPELLCHECK)
    assert sorted(line["dead_letter_record"] for line in logged) == sorted(
        2 * [f"{dlq}/{r['partition']}/{r['offset']}" for r in first]
    )


def test_a_batch_id_with_slashes_is_inspected_through_the_service_process(
    dev_service: RunningService, tmp_path: Path
) -> None:
    bootstrap = json.loads((tmp_path / "bcs-dev.json").read_text())["bootstrap_servers"]
    run = time.time_ns()
    batch_ids = [f"ops/{run}", f"/{run}/lead", f"x//{run}/", f"{run}/../y", f"{run}/a b?#%2F", ".."]
    asyncio.run(
        publish(bootstrap, [(t.value, v) for b in batch_ids for t, v in sample_batch(b)[:2]])
    )
    for batch_id in batch_ids:

        def inspected(batch_id: str = batch_id) -> dict[str, Any]:
            code, out, _ = bcs(tmp_path, "inspect", batch_id, "--json")
            return json.loads(out) if code == 0 else {}

        shown = until(inspected, f"{batch_id!r} is inspected")
        assert (shown["batch_id"], shown["roster"]) == (batch_id, {"size": 3, "source": "ready"})
        for safe in ("", "/"):
            status, _, body = dev_service.request(
                "GET", "/internal/v1/batches/" + quote(batch_id, safe=safe)
            )
            assert (status, json.loads(body)["batch_id"]) == (200, batch_id), (batch_id, safe)
