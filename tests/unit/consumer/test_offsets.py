"""Where a fetch sits in its partitions, for any messages in any order: the offset to commit
(one after the last), the one to seek back to (the first) and the range a log line shows."""

from hypothesis import given
from hypothesis import strategies as st

from batch_conductor_service.consumer.fetched_batch import offset_ranges
from batch_conductor_service.consumer.offsets import PartitionKey, first_offsets, next_offsets
from tests.support.consumed_message import Message

messages = st.lists(
    st.builds(
        Message,
        topic=st.sampled_from(["a", "b"]),
        partition=st.integers(0, 2),
        offset=st.integers(0, 10**12),
    ),
    max_size=30,
)


def _by_partition(batch: list[Message]) -> dict[PartitionKey, list[int]]:
    offsets: dict[PartitionKey, list[int]] = {}
    for message in batch:
        offsets.setdefault(PartitionKey(message.topic, message.partition), []).append(
            message.offset
        )
    return offsets


@given(messages)
def test_commit_after_the_last_and_seek_back_to_the_first(batch: list[Message]) -> None:
    expected = _by_partition(batch)
    assert next_offsets(batch) == {key: max(o) + 1 for key, o in expected.items()}
    assert first_offsets(batch) == {key: min(o) for key, o in expected.items()}
    assert offset_ranges(batch) == {
        f"{key.topic}/{key.partition}": [min(o), max(o)] for key, o in expected.items()
    }
