"""Every step an event takes, in order: read, translate, place, store, dead-letter, commit.

`consume_once` is the whole story of one fetch. The failure rule (docs/failures.md): an outage of
our own infrastructure (a store, or the dead-letter topic) is nobody's message's fault: nothing
is committed and the fetch is read again later (the loop's business, loop.py). Anything else is
pinned on the one message that causes it, which is dead-lettered while the rest are stored, so
one bad message never stalls a partition.
"""

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from opentelemetry.trace import Tracer
from tenacity import AsyncRetrying, retry_if_not_exception_type, stop_after_attempt, wait_fixed

from batch_conductor_service.consumer.tracing import (
    UNTRACED,
    FetchSpans,
    Record,
    message_trace,
    start_spans,
)
from batch_conductor_service.consumer.translation import (
    Event,
    UnprocessableEventError,
    translate,
)
from batch_conductor_service.domain.batch_state import ApplyResult, BatchChange, ParkedResult
from batch_conductor_service.errors import DeadLetterUnavailableError, StateStoreUnavailableError
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import (
    BatchStateRepositoryProtocol,
    DlqProducerProtocol,
    EssayPlacementProtocol,
)
from common_core.events import DeadLetterReason
from huleedu_service_libs.log_bounds import clip, clip_error, clip_id
from huleedu_service_libs.logging_utils import get_logger
from huleedu_service_libs.trace_context import NO_TRACE, TraceCarrier, normalised

logger = get_logger(__name__)

# Failures of our own infrastructure: the fetch waits and is read again, nothing is skipped.
OUTAGES = (StateStoreUnavailableError, DeadLetterUnavailableError)
# Messages translated in one turn of the event loop: a 2,000-message fetch is about 30 ms of
# translation, which in one piece would hold every /define and health check waiting behind it.
TRANSLATE_TURN = 100


class Item(NamedTuple):
    """A change to store, with the message it came from (None: a parked result a roster
    placed; its own message was committed when it was parked). A NamedTuple, as Event is."""

    change: BatchChange
    record: Record | None
    correlation_id: str | None
    parked: ParkedResult | None = None


@dataclass(frozen=True, slots=True)
class Dead:
    """A message for the dead-letter topic, and why."""

    record: Record
    reason: DeadLetterReason
    error: str
    correlation_id: str | None = None
    # The trace context its envelope carried, when it was read that far.
    trace: TraceCarrier = field(default_factory=lambda: NO_TRACE)


class EventPipeline:
    def __init__(
        self,
        repository: BatchStateRepositoryProtocol,
        placement: EssayPlacementProtocol,
        dead_letters: DlqProducerProtocol,
        metrics: BcsMetrics,
        *,
        max_records: int,
        max_attempts: int = 3,
        max_clock_skew_seconds: float = 3600.0,
        poll_timeout_ms: int = 500,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        tracer: Tracer | None = None,
    ) -> None:
        self._repository = repository
        self._placement = placement
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._max_records = max_records
        self._attempts = max_attempts
        self._max_skew = timedelta(seconds=max_clock_skew_seconds)
        self._poll_timeout_ms = poll_timeout_ms
        self._clock = clock
        self._tracer = tracer

    async def consume_once(self, consumer: AIOKafkaConsumer) -> int:
        """One fetch, stored and committed; returns how many messages it held. Raises an
        outage (OUTAGES) after seeking back, so that the same messages are read again."""
        fetched = await consumer.getmany(
            timeout_ms=self._poll_timeout_ms, max_records=self._max_records
        )
        records = [record for partition in fetched.values() for record in partition]
        if not records:
            return 0
        try:
            await self.handle(records)
        except OUTAGES:
            self._seek_back(consumer, records)
            raise
        except Exception:
            # Not an outage, yet not pinned on a message either (a bug): each message is
            # handled alone, and one that fails alone is dead-lettered.
            logger.exception("fetch_failed_unexpectedly", partitions=offset_ranges(records))
            self._metrics.consumer_errors.labels("unexpected").inc()
            await self._one_by_one(consumer, records)
        await self._commit(consumer, records)
        return len(records)

    async def _one_by_one(self, consumer: AIOKafkaConsumer, records: Sequence[Record]) -> None:
        for at, record in enumerate(records):
            try:
                await self._handle_alone(record)
            except OUTAGES:
                # Storing it, or dead-lettering it: it and those after it are read again.
                self._seek_back(consumer, records[at:])
                raise

    async def _handle_alone(self, record: Record) -> None:
        try:
            await self.handle([record])
        except OUTAGES:
            raise
        except Exception as exc:
            logger.exception("event_failed_unexpectedly", offset=record.offset)
            error = f"handling raised {clip_error(exc)}"
            await self._dead_letter(Dead(record, DeadLetterReason.PROCESSING_FAILED, error))

    def _seek_back(self, consumer: AIOKafkaConsumer, records: Sequence[Record]) -> None:
        """So that the same messages are fetched again, after the outage."""
        for tp, (offset, _) in _offset_spans(records).items():
            with contextlib.suppress(
                IllegalStateError
            ):  # revoked meanwhile: its new owner reads it
                consumer.seek(tp, offset)
        self._count_each((record.topic, "retried") for record in records)

    async def handle(self, records: Sequence[Record]) -> None:
        """Everything but reading and committing. Raises an outage, or an error nobody
        foresaw (the loop then handles the fetch message by message)."""
        started = self._clock()
        events, dead = await self._translate(records, started)
        spans = UNTRACED
        if self._tracer is not None:
            traces = {id(d.record): d.trace for d in dead}
            spans = start_spans(self._tracer, records, events, traces)
        outcome_of: dict[int, str] = {}
        failure: BaseException | None = None
        try:
            with spans.storing(len(records)):
                items, unplaceable = await self._place(events)
                stored, failed = await self._store(items)
                # A parked result leaves the lot once placed: each is placed once (design.md).
                placed = {i.parked for i, _ in stored if i.parked is not None}
                await self._placement.unpark(list(placed - {i.parked for i, _ in failed}))
                dead_lettered = [*dead, *unplaceable, *self._poison(failed, events)]
                for item in dead_lettered:
                    with spans.of(item.record):
                        await self._dead_letter(item, spans)
                outcome_of = self._report(
                    records, events, stored, started, {id(d.record) for d in dead_lettered}
                )
        except BaseException as exc:
            failure = exc
            raise
        finally:
            spans.end(outcome_of, failure)

    @staticmethod
    def _poison(
        failed: Sequence[tuple[Item, str]], events: Sequence[tuple[Record, Event]]
    ) -> list[Dead]:
        """A message is dead-lettered once, however many of its changes failed."""
        if not failed:
            return []
        trace_of = {id(record): event.trace for record, event in events}
        reason = DeadLetterReason.PROCESSING_FAILED
        poison = {
            id(i.record): Dead(
                i.record, reason, e, i.correlation_id, trace_of.get(id(i.record), NO_TRACE)
            )
            for i, e in failed
            if i.record is not None
        }
        return list(poison.values())

    async def _translate(
        self, records: Sequence[Record], received_at: datetime
    ) -> tuple[list[tuple[Record, Event]], list[Dead]]:
        events: list[tuple[Record, Event]] = []
        dead: list[Dead] = []
        for at, record in enumerate(records):
            if at and not at % TRANSLATE_TURN:
                await asyncio.sleep(0)
            try:
                events.append(
                    (record, translate(record.topic, record.value, received_at, self._max_skew))
                )
            except UnprocessableEventError as exc:
                dead.append(Dead(record, exc.reason, exc.detail, exc.correlation_id, exc.trace))
            except Exception as exc:
                # Translation is pure: an error nobody foresaw would recur on every try.
                reason = DeadLetterReason.PROCESSING_FAILED
                dead.append(Dead(record, reason, f"translation raised {clip_error(exc)}"))
        return events, dead

    async def _place(self, events: Sequence[tuple[Record, Event]]) -> tuple[list[Item], list[Dead]]:
        """Gives each essay result that named no batch the batches whose rosters name its
        essay: on arrival, or when a roster arrives later (it was parked meanwhile). A roster
        indexes its essays before it reads the parked results, a result parks before it reads
        the index again, so a roster and a result racing each other always meet (both may:
        the store then counts the second application as a duplicate)."""
        items = [
            Item(event.said, record, event.correlation_id)
            for record, event in events
            if isinstance(event.said, BatchChange)
        ]
        results = [
            (record, event, event.said)
            for record, event in events
            if isinstance(event.said, ParkedResult)
        ]
        rosters: dict[str, set[str]] = {}
        for item in items:
            if item.change.roster is not None:
                rosters.setdefault(item.change.batch_id, set()).update(item.change.roster)
        if rosters:
            await self._placement.index_rosters(rosters)
        unplaceable: list[Dead] = []
        if results:
            batches = await self._placement.batches_of({r.essay_id for _, _, r in results})
            waiting = [r for _, _, r in results if r.essay_id not in batches]
            refused = await self._placement.park(waiting)
            parked = [r for r in waiting if r not in refused]
            if parked:
                batches |= await self._placement.batches_of({r.essay_id for r in parked})
            for record, event, result in results:
                if result in refused:
                    self._metrics.unplaced_results.labels("refused").inc()
                    error = "no roster names its essay yet and the parking lot is full"
                    reason = DeadLetterReason.UNPLACEABLE_EVENT
                    dead = Dead(record, reason, error, event.correlation_id, event.trace)
                    unplaceable.append(dead)
                    continue
                placed_in = sorted(batches.get(result.essay_id, ()))
                outcome = "placed_on_arrival" if placed_in else "parked"
                self._metrics.unplaced_results.labels(outcome).inc()
                was_parked = result if result in parked else None
                for batch_id in placed_in:
                    change = result.placed_in(batch_id)
                    items.append(Item(change, record, event.correlation_id, was_parked))
        if rosters:
            parked_for = await self._placement.parked_for(set().union(*rosters.values()))
            for batch_id in sorted(rosters):
                for essay_id in sorted(rosters[batch_id]):
                    for result in parked_for.get(essay_id, ()):
                        items.append(Item(result.placed_in(batch_id), None, None, result))
        return items, unplaceable

    async def _store(
        self, items: Sequence[Item]
    ) -> tuple[list[tuple[Item, ApplyResult]], list[tuple[Item, str]]]:
        """Stores every change in one call. If that fails for a reason other than an outage,
        each change is tried alone, a bounded number of times: one that still fails is
        poison (its message is dead-lettered while the rest are stored; a parked result a
        roster placed stays parked, as its own message was committed long ago)."""
        if not items:
            return [], []
        try:
            results = await self._repository.apply([item.change for item in items])
            return list(zip(items, results, strict=True)), []
        except OUTAGES:
            raise
        except Exception as exc:
            self._metrics.consumer_errors.labels("isolating").inc()
            logger.warning("store_failed_isolating", changes=len(items), error=clip_error(exc))
        stored: list[tuple[Item, ApplyResult]] = []
        failed: list[tuple[Item, str]] = []
        for item in items:
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self._attempts),
                wait=wait_fixed(0.05),
                retry=retry_if_not_exception_type(OUTAGES),
                reraise=True,
            )
            try:
                results = await retrying(self._repository.apply, [item.change])
            except OUTAGES:
                raise
            except Exception as exc:
                error = f"storing failed {self._attempts} times: {clip_error(exc)}"
                failed.append((item, error))
                if item.record is None:
                    self._metrics.unplaced_results.labels("failed").inc()
                    logger.error("parked_result_not_placed", error=error)
                continue
            stored.append((item, results[0]))
        return stored, failed

    async def _dead_letter(self, dead: Dead, spans: FetchSpans = UNTRACED) -> None:
        """The record keeps the message's own trace context, or when it carried none (or none
        valid), that of the span that processed it: a replay continues the same trace."""
        record = dead.record
        own = normalised(message_trace(record, dead.trace))
        spans.dead_lettered(record, dead.reason.value, dead.error)
        appended = await self._dead_letters.send(
            original_topic=record.topic,
            payload=record.value or b"",
            reason=dead.reason.value,
            error=dead.error,
            partition=record.partition,
            offset=record.offset,
            correlation_id=dead.correlation_id,
            headers=record.headers,
            trace_context=own or spans.trace_of(record),
        )
        if not appended:  # replayed from a record that still stands for it
            self._metrics.events_processed.labels(record.topic, "replay_failed").inc()
            return
        self._metrics.dlq_records.labels(record.topic, dead.reason.value).inc()
        self._metrics.events_processed.labels(record.topic, "dead_lettered").inc()
        logger.warning(
            "event_dead_lettered",
            correlation_id=clip_id(dead.correlation_id),
            reason=dead.reason.value,
            error=clip(dead.error),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )

    async def _commit(self, consumer: AIOKafkaConsumer, records: Sequence[Record]) -> None:
        offsets = {tp: last + 1 for tp, (_, last) in _offset_spans(records).items()}
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced: the new owner reads these again; idempotency absorbs it.
            logger.warning("consumer_commit_rejected", error=repr(exc))

    def _report(
        self,
        records: Sequence[Record],
        events: Sequence[tuple[Record, Event]],
        stored: Sequence[tuple[Item, ApplyResult]],
        started: datetime,
        dead_lettered: set[int],
    ) -> dict[int, str]:
        """Counts and logs what became of each message; returns it, by id() of the record."""
        # Per message: applied if any change it made was new; a result not yet placed is parked;
        # a dead-lettered one is that alone (_dead_letter counted it), whatever else it did.
        outcome_of: dict[int, str] = dict.fromkeys(dead_lettered, "dead_lettered")
        for item, result in stored:
            if item.record is not None and outcome_of.get(id(item.record)) not in (
                "applied",
                "dead_lettered",
            ):
                outcome_of[id(item.record)] = result.value
            if item.record is None and result is ApplyResult.APPLIED:
                self._metrics.unplaced_results.labels("placed_by_roster").inc()
        for record, event in events:
            if id(record) not in outcome_of:
                outcome_of[id(record)] = "parked" if event.said is not None else "ignored"
        self._count_each(
            (record.topic, outcome_of[id(record)])
            for record in records
            if id(record) in outcome_of and id(record) not in dead_lettered
        )
        applied = [item.change.occurred_at for item, r in stored if r is ApplyResult.APPLIED]
        if applied:
            # Duplicates are replays of old news: counting them would make a redelivery look fresh.
            age = (self._clock() - max(applied)).total_seconds()
            self._metrics.last_event_age.set(max(0.0, age))
        seconds = (self._clock() - started).total_seconds()
        self._metrics.consumer_batch_seconds.observe(seconds)
        outcomes = Counter(outcome_of.values())
        logger.info(
            "event_batch_stored",
            messages=len(records),
            **{outcome: outcomes[outcome] for outcome in sorted(outcomes)},
            seconds=round(seconds, 4),
            partitions=offset_ranges(records),
            correlation_ids=_some(e.correlation_id for _, e in events),
            event_ids=_some(e.event_id for _, e in events),
        )
        return outcome_of

    def _count_each(self, topic_outcomes: Iterable[tuple[str, str]]) -> None:
        """events_processed, one increment per topic and outcome: a label lookup costs more
        than an event."""
        for (topic, outcome), count in Counter(topic_outcomes).items():
            self._metrics.events_processed.labels(topic, outcome).inc(count)


def _some(ids: Iterable[str | None], limit: int = 20) -> list[str]:
    """Enough ids to find an event's story; a 2,000-message fetch must not make a 2,000-id line
    (nor be walked to its end for one)."""
    unique: dict[str, None] = {}
    for i in ids:
        if i:
            unique[i] = None
            if len(unique) == limit:
                break
    return [clip_id(i) for i in unique]


def _offset_spans(records: Sequence[Record]) -> dict[TopicPartition, tuple[int, int]]:
    """Each partition's first and last offset among the records (one pass: a fetch holds
    thousands of records and a handful of partitions)."""
    spans: dict[tuple[str, int], list[int]] = {}
    for record in records:
        span = spans.get((record.topic, record.partition))
        if span is None:
            spans[(record.topic, record.partition)] = [record.offset, record.offset]
        elif record.offset < span[0]:
            span[0] = record.offset
        elif record.offset > span[1]:
            span[1] = record.offset
    return {TopicPartition(*tp): (first, last) for tp, (first, last) in spans.items()}


def offset_ranges(records: Sequence[Record]) -> dict[str, list[int]]:
    """`topic/partition` -> [first offset, last offset], as log lines show a fetch."""
    return {
        f"{tp.topic}/{tp.partition}": [first, last]
        for tp, (first, last) in _offset_spans(records).items()
    }
