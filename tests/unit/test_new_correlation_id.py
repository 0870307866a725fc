"""A correlation id made for a request that brought none: a version-4 UUID, new every time,
and one the service would adopt if a client sent it back."""

import uuid

from huleedu_service_libs.correlation import new_correlation_id, usable_correlation_id


def test_a_new_id_is_a_version_4_uuid_in_canonical_text() -> None:
    for _ in range(2_000):
        text = new_correlation_id()
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text
        assert usable_correlation_id(text) == text


def test_new_ids_do_not_repeat() -> None:
    ids = [new_correlation_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)
