"""How a batch is spelled in Redis: its keys share one hash tag whatever its id holds (one
cluster slot), and its facts read back as they were written."""

from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from batch_conductor_service.domain.batch_state import BatchFacts, RosterSource
from batch_conductor_service.stores.redis.layout import (
    BatchKeys,
    facts_fields,
    hash_tag,
    outcome_scores,
    parse_facts,
)
from common_core.enums import BatchPhaseStatus
from tests.support.change_strategies import times


def test_an_id_without_braces_or_percent_signs_is_its_own_tag() -> None:
    assert BatchKeys("bcs", "batch-1").facts == "bcs:{batch-1}:facts"


def test_braces_and_percent_signs_are_encoded_and_the_encoding_does_not_collide() -> None:
    assert hash_tag("}x") == "%7Dx"
    assert hash_tag("{x}") == "%7Bx%7D"
    assert hash_tag("%7Dx") == "%257Dx"


@given(st.text(min_size=1, max_size=300))
def test_every_key_of_a_batch_hashes_to_the_same_slot_as_its_tag(batch_id: str) -> None:
    keys = BatchKeys("bcs", batch_id)
    tag = hash_tag(batch_id)
    assert tag
    assert "{" not in tag
    assert "}" not in tag
    slots = {
        key_slot(key.encode("utf-8", "surrogatepass"))
        for key in (keys.facts, keys.outcomes, keys.counts)
    }
    assert slots == {key_slot(tag.encode("utf-8", "surrogatepass"))}


@given(st.text(min_size=1, max_size=50), st.text(min_size=1, max_size=50))
def test_two_different_ids_never_share_a_tag(first: str, second: str) -> None:
    if first != second:
        assert hash_tag(first) != hash_tag(second)


essay = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
essays = st.sets(essay, max_size=4)
step = st.sampled_from(["spellcheck", "nlp", "ai_feedback"])


@st.composite
def facts(draw: st.DrawFn) -> BatchFacts:
    written = BatchFacts(
        "b", last_event_at=draw(times), event_ids=draw(st.sets(st.uuids().map(str)))
    )
    for source in draw(st.sets(st.sampled_from(list(RosterSource)))):
        written.rosters[source] = draw(essays)
    written.succeeded = draw(st.dictionaries(step, essays.filter(bool)))
    written.failed = draw(st.dictionaries(step, essays.filter(bool)))
    written.outcomes = draw(
        st.dictionaries(st.tuples(step, st.sampled_from(list(BatchPhaseStatus))), times)
    )
    return written


@given(facts())
def test_facts_read_back_as_they_were_written(written: BatchFacts) -> None:
    fields = facts_fields(written, with_event_ids=True)
    scored = sorted(outcome_scores(written).items())
    read, unparsed = parse_facts("b", fields, scored)
    assert unparsed == 0
    assert read == written


def test_a_field_that_does_not_parse_is_counted_and_left_out() -> None:
    read, unparsed = parse_facts("b", ["s:no-separator"], [("nlp\x1fNOT_A_STATUS", 0)])
    assert unparsed == 2
    assert read == BatchFacts("b", last_event_at=None)
