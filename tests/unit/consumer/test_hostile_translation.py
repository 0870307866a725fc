"""Whatever a message holds, translating it ends in a change or a classified rejection.

Hypothesis feeds arbitrary bytes to every consumed topic, and valid envelopes of both
generations of the platform with one part mutated (any field, at any depth, replaced by a value
of any type: huge, hostile, nested, or removed). The only outcomes allowed are a change (or an
essay result for the rosters to place, or nothing) whose ids and names are within the edge's
bounds, or an UnprocessableEventError with one of the reasons the translation assigns: never
another exception, never the catch-all `processing_failed`.
"""

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_conductor_service.consumer.translation import (
    CONSUMED_TOPICS,
    UnprocessableEventError,
    translate,
)
from batch_conductor_service.domain.batch_state import BatchChange, ParkedResult
from common_core.events import DeadLetterReason
from common_core.topics import Topic
from tests.support import event_factory as ev
from tests.support import huleedu_fixtures as hf
from tests.support.hypothesis_profiles import examples

CLASSIFIED = {
    DeadLetterReason.INVALID_JSON,
    DeadLetterReason.SCHEMA_VALIDATION_FAILED,
    DeadLetterReason.TIMESTAMP_IN_FUTURE,
}
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Figures quoted in docs/failures.md (the ci profile's; dev runs a tenth).
BYTES_EXAMPLES = examples(400)
MUTATION_EXAMPLES = examples(800)
MAX_SKEW = timedelta(hours=1)


def seed_era_samples() -> list[tuple[str, dict[str, Any]]]:
    return [
        (Topic.BATCH_ESSAYS_REGISTERED, ev.registered("b1", ["e1", "e2"])),
        (Topic.BATCH_ESSAYS_READY, ev.ready("b1", ["e1", "e2"])),
        (Topic.SPELLCHECK_COMPLETED, ev.spellcheck("b1", "e1")),
        (Topic.SPELLCHECK_COMPLETED, ev.spellcheck(None, "e1")),
        (Topic.CJ_ASSESSMENT_COMPLETED, ev.cj_completed("b1", ["e1"])),
        (Topic.CJ_ASSESSMENT_FAILED, ev.cj_failed("b1")),
        (
            Topic.BATCH_PHASE_OUTCOME,
            ev.phase_outcome("b1", "spellcheck", "COMPLETED_WITH_FAILURES", ["e1"], ["e2"]),
        ),
    ]


def current_samples() -> list[tuple[str, dict[str, Any]]]:
    samples = []
    for name in hf.fixture_names():
        fixture = hf.load(name)
        if fixture.topic in CONSUMED_TOPICS:
            samples.append((fixture.topic, fixture.document))
    return samples


SAMPLES = seed_era_samples() + current_samples()

hostile_strings = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(max_codepoint=0x9F), max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "}",
            "{x}",
            "\x00",
            "a\x00b",
            "\ud800",
            "9999-12-31T23:59:59-10:00",
            "0001-01-01T00:00:00+10:00",
            "2999-01-01T00:00:00Z",
            "not-a-uuid",
            "FAILED_CRITICALLY",
            "completed_successfully",
            "spellcheck_failed",
        ]
    ),
    st.integers(min_value=256, max_value=5000).map(lambda n: "x" * n),
    st.integers(min_value=1, max_value=20_000).map(lambda n: "\x01" * n),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    hostile_strings,
)
hostile_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(hostile_strings, inner, max_size=5),
    max_leaves=20,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


def mutated(document: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    copy = json.loads(json.dumps(document))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return copy


def check(topic: str, raw: bytes) -> str:
    # Received now: the samples are stamped in the past (the fixtures within the last hour).
    received = datetime.now(UTC)
    try:
        event = translate(topic, raw, received, MAX_SKEW)
    except UnprocessableEventError as error:
        rejected = error
    else:
        rejected = None
    if rejected is not None:
        assert rejected.reason in CLASSIFIED, rejected
        return rejected.reason.value
    said = event.said
    ids = [event.event_id]
    if isinstance(said, BatchChange):
        assert said.event_id == event.event_id
        ids += [said.batch_id, *(said.roster or ())]
        ids += [e.essay_id for e in said.essays] + [e.step for e in said.essays]
        if said.outcome_step is not None:
            ids.append(said.outcome_step)
        if said.outcome is not None:
            # The time rule holds whatever else the message holds.
            assert said.outcome.at <= received
    elif isinstance(said, ParkedResult):
        assert said.event_id == event.event_id
        ids += [said.essay_id, said.step]
    else:
        assert said is None
    if event.correlation_id is not None:
        ids.append(event.correlation_id)
    for value in ids:
        assert 0 < len(value) <= 255, value[:80]
        assert not UNPRINTABLE.search(value), repr(value[:80])
    return "change"


@settings(max_examples=BYTES_EXAMPLES, deadline=None)
@given(topic=st.sampled_from(CONSUMED_TOPICS), raw=st.binary(max_size=2000))
def test_arbitrary_bytes_are_a_change_or_a_classified_rejection(topic: str, raw: bytes) -> None:
    check(topic, raw)


@settings(
    max_examples=MUTATION_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_a_valid_envelope_with_any_part_mutated_is_a_change_or_a_classified_rejection(
    data: st.DataObject,
) -> None:
    topic, document = data.draw(st.sampled_from(SAMPLES))
    path = data.draw(st.sampled_from(paths(document)))
    delete = bool(path) and data.draw(st.booleans())
    value = None if delete else data.draw(hostile_values)
    candidate = mutated(document, path, value, delete)
    # json, not orjson: it writes integers beyond 64 bits and lone surrogates (as escapes).
    check(topic, json.dumps(candidate).encode())


def test_the_samples_cover_every_consumed_topic_and_are_valid() -> None:
    assert {topic for topic, _ in SAMPLES} == set(CONSUMED_TOPICS)
    for topic, document in SAMPLES:
        assert check(topic, json.dumps(document).encode()) == "change"
