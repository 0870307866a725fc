"""The placement's writes and reads of many essays as one Lua script per chunk of essays, for a
single Redis server.

A roster names up to thousands of essays, each with keys of its own; sent as commands, that is
two or three per essay, and redis-py's cost per command was most of what a fetch of rosters
took. A script takes any keys on one server, so a chunk of essays costs one command. On a Redis
Cluster the essays' keys sit in different slots, which one script may not span: there the
placement keeps to per-key commands in a pipeline.
"""

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import NoScriptError

from batch_conductor_service.stores.redis.client import BatchStateRedis

# Essays per script: bounds how long one call holds the server.
CHUNK = 500

# KEYS: each essay's batches set. ARGV[1]: TTL seconds; then, per key, how many batch ids
# follow, and the ids.
INDEX_SCRIPT = """
local ttl, at = ARGV[1], 2
for _, key in ipairs(KEYS) do
  local count = tonumber(ARGV[at])
  redis.call('SADD', key, unpack(ARGV, at + 1, at + count))
  redis.call('EXPIRE', key, ttl)
  at = at + count + 1
end
return #KEYS
"""

# KEYS: keys to read with the command in ARGV[1] (SMEMBERS or HVALS); one reply per key.
READ_SCRIPT = """
local replies = {}
for i, key in ipairs(KEYS) do replies[i] = redis.call(ARGV[1], key) end
return replies
"""

_SHAS = {
    script: hashlib.sha1(script.encode()).hexdigest() for script in (INDEX_SCRIPT, READ_SCRIPT)
}


async def index_essays(
    client: BatchStateRedis, batches_by_key: dict[str, list[str]], ttl_seconds: int
) -> None:
    keys = list(batches_by_key)
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        args: list[str] = [str(ttl_seconds)]
        for key in chunk:
            ids = batches_by_key[key]
            args += [str(len(ids)), *ids]
        await _run(client, INDEX_SCRIPT, chunk, args)


async def read_keys(client: BatchStateRedis, command: str, keys: Sequence[str]) -> list[Any]:
    replies: list[Any] = []
    for start in range(0, len(keys), CHUNK):
        replies += await _run(client, READ_SCRIPT, keys[start : start + CHUNK], [command])
    return replies


async def _run(client: BatchStateRedis, script: str, keys: Sequence[str], args: list[str]) -> Any:
    call: Callable[..., Any] = client.evalsha
    try:
        return await call(_SHAS[script], len(keys), *keys, *args)
    except NoScriptError:
        # The first call on a server (or after SCRIPT FLUSH): EVAL caches it there for the next.
        return await client.eval(script, len(keys), *keys, *args)
