"""Commands packed into the Redis protocol by hiredis (C), not by redis-py's Python packer.

redis-py's asyncio connection packs every argument in Python; with rosters of many essays and a
script call per /define that was a tenth to a fifth of the service's time. redis-py's own
synchronous client packs with hiredis when it is installed (it is a dependency here, under
redis-py's parser); this connection does the same for the asyncio one. The bytes sent are the
same (tests/unit/stores/test_redis_packing.py).
"""

from typing import Any

import hiredis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

_PLAIN = frozenset({str, bytes, int})


class HiredisPackingConnection(Connection):
    def pack_command(self, *args: Any) -> list[bytes]:
        # As redis-py does: a first argument holding spaces ("CONFIG GET") is several words.
        first = args[0]
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        # Text, bytes and integers, as nearly every command holds only these, are told apart
        # from the rest by their exact types in one pass in C; a roster's SADD has hundreds.
        if not _PLAIN.issuperset(map(type, args)) and any(
            isinstance(arg, bool | float) for arg in args
        ):
            # redis-py refuses booleans and writes floats by repr(): leave those to it.
            return super().pack_command(*args)
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:
            raise DataError(str(exc)) from exc
