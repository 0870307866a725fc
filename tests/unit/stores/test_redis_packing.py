"""The hiredis packer sends exactly the bytes redis-py's own packer would."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from batch_conductor_service.stores.redis.packing import HiredisPackingConnection

# Any text Redis can take (UTF-8 encodable: no lone surrogates), bytes and integers.
text = st.text(st.characters(exclude_categories=("Cs",)))
argument = st.one_of(text, st.binary(), st.integers(-(2**63), 2**63 - 1))
commands = st.sampled_from(["SADD", "EVALSHA", "CONFIG GET", b"HSET", b"CLIENT SETINFO"])


def packed(connection: Connection, *args: object) -> bytes:
    return b"".join(connection.pack_command(*args))


@given(commands, st.lists(argument, max_size=12))
def test_the_bytes_are_redis_pys(command: str | bytes, args: list[object]) -> None:
    assert packed(HiredisPackingConnection(), command, *args) == packed(
        Connection(), command, *args
    )


@given(st.lists(st.lists(argument, min_size=1, max_size=5), max_size=6))
def test_a_pipeline_packs_the_same_bytes(commands_args: list[list[object]]) -> None:
    commands = [("SADD", *args) for args in commands_args]
    ours = b"".join(HiredisPackingConnection().pack_commands(commands))
    assert ours == b"".join(Connection().pack_commands(commands))


def test_floats_and_booleans_are_left_to_redis_py() -> None:
    assert packed(HiredisPackingConnection(), "ZADD", "k", 1.5, "m") == packed(
        Connection(), "ZADD", "k", 1.5, "m"
    )
    with pytest.raises(DataError):
        HiredisPackingConnection().pack_command("SET", "k", True)
