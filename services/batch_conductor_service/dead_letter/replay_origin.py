"""Which dead-letter record a message was replayed from.

`bcs dlq replay` sends each payload with a header naming the record it came from. Should the
message fail again, its record is still in the dead-letter topic: the producer appends no second
one (replaying poison repeatedly would otherwise double the DLQ each time), and logs and counts
the failure instead.
"""

from collections.abc import Sequence

from common_core.topics import dlq_topic

REPLAY_HEADER = "bcs-replay-of"


def replay_header(dlq_topic_name: str, partition: int, offset: int) -> tuple[str, bytes]:
    """The header a replayed message carries: `<dlq topic>/<partition>/<offset>`."""
    return REPLAY_HEADER, f"{dlq_topic_name}/{partition}/{offset}".encode()


def replayed_from(
    headers: Sequence[tuple[str, bytes | None]] | None, original_topic: str
) -> str | None:
    """The DLQ record (`<dlq topic>/<partition>/<offset>`) a message of `original_topic` was
    replayed from, or None. A header naming a record of another topic's DLQ, or not shaped
    like one, does not count: that message is dead-lettered as any other."""
    for name, value in headers or ():
        if name != REPLAY_HEADER or value is None:
            continue
        try:
            origin = value.decode("ascii")
        except UnicodeDecodeError:
            return None
        topic, _, position = origin.rpartition("/")
        topic, _, partition = topic.rpartition("/")
        if topic == dlq_topic(original_topic) and partition.isdigit() and position.isdigit():
            return origin
        return None
    return None
