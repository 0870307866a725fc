"""`bcs dlq list TOPIC` and `bcs dlq replay TOPIC`: what went to TOPIC.DLQ, and sending it back."""

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from aiokafka.errors import KafkaError

from batch_conductor_service.cli.targets import TargetUnknownError, kafka_bootstrap_servers
from batch_conductor_service.consumer.translation import CONSUMED_TOPICS
from batch_conductor_service.dead_letter.reader import (
    DeadLetterEntry,
    DeadLetterTopicMissingError,
    Selection,
    read_dead_letters,
    select,
)
from batch_conductor_service.dead_letter.replay import (
    ReplayItem,
    payload_matches_digest,
    plan_replay,
    replay,
)
from batch_conductor_service.wiring.settings import SettingsError
from common_core.topics import Topic, dlq_topic

# Whose dead-letter topics BCS writes: what it consumes, and its failed /define requests.
DEAD_LETTERED_TOPICS = (*CONSUMED_TOPICS, Topic.PIPELINE_RESOLUTION.value)


def register(commands: Any) -> None:
    dlq = commands.add_parser(
        "dlq",
        help="list or replay the records of a dead-letter topic",
        description="Dead-lettered events of TOPIC, read from TOPIC.DLQ.",
    )
    actions = dlq.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="show the records of TOPIC.DLQ")
    _common_arguments(listing)
    listing.add_argument("--json", action="store_true", help="one JSON array, for scripts")
    listing.set_defaults(run=run_list)
    replaying = actions.add_parser(
        "replay",
        help="republish the original payloads of TOPIC.DLQ's records to TOPIC",
        description="Safe to repeat: BCS applies each event once, by its event id.",
    )
    _common_arguments(replaying)
    replaying.add_argument("--from-offset", type=int, help="first DLQ offset to replay")
    replaying.add_argument("--to-offset", type=int, help="last DLQ offset to replay (inclusive)")
    replaying.add_argument(
        "--partition",
        type=int,
        help="only this partition of TOPIC.DLQ (offsets count per partition; `list` shows "
        "a record of partition P at offset O as P:O, of partition 0 as O)",
    )
    replaying.add_argument("--dry-run", action="store_true", help="show what would be sent")
    replaying.set_defaults(run=run_replay)


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic", metavar="TOPIC", help="the original topic, without .DLQ")
    parser.add_argument(
        "--reason", action="append", default=[], help="only records with this reason (repeatable)"
    )
    parser.add_argument(
        "--bootstrap-servers",
        help="Kafka to read (default: BCS_KAFKA_BOOTSTRAP_SERVERS, else the running bcs-dev's)",
    )


def _read(args: argparse.Namespace, selection: Selection) -> tuple[str, list[DeadLetterEntry]]:
    # The client's own connection errors would repeat, less plainly, the one line printed.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    bootstrap = kafka_bootstrap_servers(args.bootstrap_servers)
    try:
        entries = asyncio.run(read_dead_letters(bootstrap, args.topic))
    except DeadLetterTopicMissingError as missing:
        if args.topic not in DEAD_LETTERED_TOPICS:
            # Most likely a typo: "no records" would hide it.
            raise UnknownTopicError(
                f"BCS dead-letters nothing from {args.topic}, and the broker at {bootstrap} "
                f"has no {dlq_topic(args.topic)}. Dead-lettered topics there: "
                f"{', '.join(missing.dead_lettered) or 'none'}. Topics BCS dead-letters from: "
                f"{', '.join(DEAD_LETTERED_TOPICS)}"
            ) from None
        entries = []
    except (KafkaError, OSError) as exc:
        raise KafkaUnreachableError(f"cannot read from Kafka at {bootstrap}: {exc}") from exc
    return bootstrap, select(entries, selection)


class KafkaUnreachableError(Exception):
    pass


class UnknownTopicError(Exception):
    """Neither a topic BCS dead-letters from nor one with a dead-letter topic on the broker."""


# What ends a command with one line on stderr.
_COMMAND_ERRORS = (
    KafkaError,
    OSError,
    SettingsError,
    TargetUnknownError,
    KafkaUnreachableError,
    UnknownTopicError,
)


def run_list(args: argparse.Namespace) -> int:
    try:
        _, entries = _read(args, Selection(reasons=frozenset(args.reason)))
    except _COMMAND_ERRORS as exc:
        return _failed(exc)
    if args.json:
        print(json.dumps([entry_as_json(entry) for entry in entries], indent=2))
        return 0
    if not entries:
        print(f"{dlq_topic(args.topic)}: no dead-letter records" + _filtered(args))
        return 0
    print(f"{'OFFSET':<10} {'FAILED AT (UTC)':<20} {'REASON':<26} {'ORIGINAL':<12} ERROR")
    for entry in entries:
        print(entry_as_line(entry))
    print(f"{len(entries)} record(s) in {dlq_topic(args.topic)}" + _filtered(args))
    return 0


def run_replay(args: argparse.Namespace) -> int:
    selection = Selection(
        frozenset(args.reason), args.from_offset, args.to_offset, partition=args.partition
    )
    try:
        bootstrap, entries = _read(args, selection)
        items = plan_replay(entries, args.topic)
        for item in items:
            print(replay_line(item, dry_run=args.dry_run))
        if args.dry_run:
            sendable = sum(item.payload is not None for item in items)
            print(
                f"dry run: {sendable} of {len(items)} selected record(s) would go to {args.topic}"
            )
            return 0
        sent = asyncio.run(replay(bootstrap, args.topic, items))
    except _COMMAND_ERRORS as exc:
        return _failed(exc)
    print(f"replayed {sent} of {len(items)} selected record(s) to {args.topic}")
    return 0


def entry_as_json(entry: DeadLetterEntry) -> dict[str, Any]:
    as_json: dict[str, Any] = {"partition": entry.partition, "offset": entry.offset}
    if entry.record is None:
        as_json["problem"] = entry.problem
        return as_json
    return {**as_json, **entry.record.model_dump(mode="json")}


def entry_as_line(entry: DeadLetterEntry) -> str:
    position = f"{entry.offset}" if entry.partition == 0 else f"{entry.partition}:{entry.offset}"
    record = entry.record
    if record is None:
        when = entry.timestamp.strftime("%Y-%m-%d %H:%M:%S") if entry.timestamp else "-"
        return f"{position:<10} {when:<20} {'-':<26} {'-':<12} {entry.problem}"
    original = (
        "-"
        if record.original_partition is None
        else f"{record.original_partition}:{record.original_offset}"
    )
    when = record.failed_at.strftime("%Y-%m-%d %H:%M:%S")
    error = " ".join(record.error.split())
    if record.original_payload_truncated:
        error += " [payload truncated: not replayable]"
    elif not payload_matches_digest(record):
        error += " [payload does not match its sha256: not replayable]"
    return f"{position:<10} {when:<20} {record.reason!s:<26} {original:<12} {error}"


def replay_line(item: ReplayItem, *, dry_run: bool) -> str:
    entry = item.entry
    where = f"offset {entry.offset}" + (
        f" (partition {entry.partition})" if entry.partition else ""
    )
    if item.payload is None:
        return f"skip {where}: {item.skipped}"
    verb = "would send" if dry_run else "send"
    return f"{verb} {where}: {entry.reason}, {len(item.payload)} bytes"


def _filtered(args: argparse.Namespace) -> str:
    return f" with reason {', '.join(args.reason)}" if args.reason else ""


def _failed(exc: BaseException) -> int:
    print(f"bcs: {exc}", file=sys.stderr)
    return 1
