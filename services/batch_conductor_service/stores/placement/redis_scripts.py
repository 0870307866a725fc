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

# KEYS: essays' batches sets, grouped by batch. ARGV[1]: TTL seconds; then, per group, the
# batch id and how many of the KEYS (in order) belong to it.
INDEX_SCRIPT = """
local ttl, first = ARGV[1], 1
for at = 2, #ARGV, 2 do
  local batch, last = ARGV[at], first + tonumber(ARGV[at + 1]) - 1
  for i = first, last do
    redis.call('SADD', KEYS[i], batch)
    redis.call('EXPIRE', KEYS[i], ttl)
  end
  first = last + 1
end
return first - 1
"""

# KEYS: keys to read with the command in ARGV[1] (SMEMBERS or HVALS). Only keys that hold
# something are answered, as (position, reply) pairs: most essays of a roster have nothing kept.
READ_SCRIPT = """
local found = {}
for i, key in ipairs(KEYS) do
  local reply = redis.call(ARGV[1], key)
  if #reply > 0 then
    found[#found + 1] = i
    found[#found + 1] = reply
  end
end
return found
"""

_SHAS = {
    script: hashlib.sha1(script.encode()).hexdigest() for script in (INDEX_SCRIPT, READ_SCRIPT)
}


async def index_essays(
    client: BatchStateRedis, keys_by_batch: dict[str, list[str]], ttl_seconds: int
) -> None:
    calls: list[tuple[list[str], list[str]]] = []
    keys: list[str] = []
    args: list[str] = [str(ttl_seconds)]
    for batch_id, batch_keys in keys_by_batch.items():
        start = 0
        while start < len(batch_keys):
            room = CHUNK - len(keys)
            part = batch_keys[start : start + room]
            keys += part
            args += [batch_id, str(len(part))]
            start += len(part)
            if len(keys) == CHUNK:
                calls.append((keys, args))
                keys, args = [], [str(ttl_seconds)]
    if keys:
        calls.append((keys, args))
    await _run_all(client, INDEX_SCRIPT, calls)


async def read_keys(client: BatchStateRedis, command: str, keys: Sequence[str]) -> dict[int, Any]:
    """The replies of the keys that hold something, by the key's position in `keys`."""
    starts = range(0, len(keys), CHUNK)
    calls = [(keys[start : start + CHUNK], [command]) for start in starts]
    replies: dict[int, Any] = {}
    for start, found in zip(starts, await _run_all(client, READ_SCRIPT, calls), strict=True):
        for position, reply in zip(found[::2], found[1::2], strict=True):
            replies[start + position - 1] = reply
    return replies


async def _run_all(
    client: BatchStateRedis, script: str, calls: Sequence[tuple[Sequence[str], list[str]]]
) -> list[Any]:
    """Every chunk's call in one pipeline: one round trip, however many chunks."""
    if len(calls) == 1:
        return [await _run(client, script, *calls[0])]
    async with client.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            pipe.execute_command("EVALSHA", _SHAS[script], len(keys), *keys, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    for reply in replies:
        if isinstance(reply, Exception) and not isinstance(reply, NoScriptError):
            raise reply
    return [
        await _run(client, script, keys, args) if isinstance(reply, NoScriptError) else reply
        for (keys, args), reply in zip(calls, replies, strict=True)
    ]


async def _run(client: BatchStateRedis, script: str, keys: Sequence[str], args: list[str]) -> Any:
    call: Callable[..., Any] = client.evalsha
    try:
        return await call(_SHAS[script], len(keys), *keys, *args)
    except NoScriptError:
        # The first call on a server (or after SCRIPT FLUSH): EVAL caches it there for the next.
        return await client.eval(script, len(keys), *keys, *args)
