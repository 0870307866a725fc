"""The event contracts' fast paths (canonical event ids recognised without parsing, printable
ASCII accepted without a search) decide exactly as the plain definitions do, for any input.
(The formats' claims, walked in one loop, are tested with the translation they belong to:
tests/unit/consumer/test_translation.py.)"""

import re
import uuid

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from common_core.events.building_blocks import printable
from common_core.events.envelope import _canonical_uuid


def _spellings(value: uuid.UUID) -> st.SearchStrategy[str]:
    text = str(value)
    return st.sampled_from(
        [text, text.upper(), value.hex, f"{{{text}}}", f"urn:uuid:{text}", text.swapcase()]
    )


@given(st.one_of(st.uuids().flatmap(_spellings), st.text(max_size=40)))
# 32 characters, not all hexadecimal: uuid refuses it with int()'s message, not its own.
@example("0000000000000000000000000000000:")
def test_an_event_id_is_canonical_as_uuid_would_spell_it(value: str) -> None:
    try:
        expected = str(uuid.UUID(value))
    except ValueError as refused:
        with pytest.raises(ValueError, match=re.escape(str(refused))):
            _canonical_uuid(value)
    else:
        assert _canonical_uuid(value) == expected


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


ANY_CODE_POINT = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())


@given(st.text(alphabet=ANY_CODE_POINT, max_size=30))
def test_printable_refuses_exactly_the_control_characters(value: str) -> None:
    if _UNPRINTABLE.search(value):
        with pytest.raises(ValueError, match="control characters"):
            printable(value)
    else:
        assert printable(value) == value
