"""How a batch is spelled in Redis: its keys share one hash tag whatever its id holds (one
cluster slot), and its facts' names travel joined into one argument. That its facts read back
as they were written is the store differential's (tests/integration/stores/
test_store_differential.py): the count script reads them."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from batch_conductor_service.stores.redis.layout import (
    NAME_SEPARATOR,
    BatchKeys,
    hash_tag,
    joined_names,
)
from tests.support.change_strategies import fact_names


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


@given(st.lists(fact_names, min_size=1, max_size=50))
def test_joined_names_split_back_into_the_same_names(names: list[str]) -> None:
    assert joined_names(names).split(NAME_SEPARATOR) == names


def test_a_name_holding_the_record_separator_is_refused_not_split_into_other_facts() -> None:
    with pytest.raises(ValueError, match="record separator"):
        joined_names(["reg:e1", f"reg:e2{NAME_SEPARATOR}reg:e3"])
