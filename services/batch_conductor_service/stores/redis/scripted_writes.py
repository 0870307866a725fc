"""The writes of one atomic apply, sent as one script call inside its MULTI/EXEC.

Inside MULTI Redis acknowledges every command on its own, and redis-py reads each
acknowledgement with a call of its own: with the TTL refresh of every key that was about sixteen
commands per batch and write, and the largest part of the consumer's Redis time. Here the same
commands (writes.py queues them) are recorded and sent as one EVAL, which runs them in the same
order. The WATCH before the MULTI still guards the whole write.
"""

from collections.abc import Mapping

from batch_conductor_service.stores.redis.writes import Pipe

# Op codes, each followed by the index of its key in KEYS:
#   S n m1..mn   SADD of n members      D   DEL
#   Z score m    ZADD GT                E s EXPIRE s seconds
# A command that fails (a key of another type) stops the script there, so nothing queued after
# it (the event ids, which mark an event as done) is written.
WRITE_SCRIPT = """
local i, n = 1, #ARGV
while i <= n do
  local op, key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  if op == 'S' then
    local count = tonumber(ARGV[i + 2])
    redis.call('SADD', key, unpack(ARGV, i + 3, i + 2 + count))
    i = i + 3 + count
  elseif op == 'E' then
    redis.call('EXPIRE', key, ARGV[i + 2])
    i = i + 3
  elseif op == 'Z' then
    redis.call('ZADD', key, 'GT', ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'D' then
    redis.call('DEL', key)
    i = i + 2
  else
    return redis.error_reply('unknown write op ' .. tostring(op))
  end
end
return n
"""
# Lua's unpack() puts every value on the C stack, which holds about 8,000: a roster of 10,000
# essays goes in several SADDs (one script, so still one atomic write).
SADD_CHUNK = 1_000


class ScriptedWrites:
    """Takes what writes.py queues on a pipeline (`sadd`, `delete`, `zadd` with GT, `expire`)
    and queues it as one EVAL on a pipeline."""

    def __init__(self) -> None:
        self._keys: dict[str, int] = {}
        self._args: list[str | int] = []

    def sadd(self, key: str, *members: str) -> None:
        index = self._index(key)
        for start in range(0, len(members), SADD_CHUNK):
            chunk = members[start : start + SADD_CHUNK]
            self._args += ["S", index, len(chunk), *chunk]

    def delete(self, key: str) -> None:
        self._args += ["D", self._index(key)]

    def zadd(self, key: str, mapping: Mapping[str, int], *, gt: bool = False) -> None:
        if not gt:
            raise ValueError("only ZADD GT is scripted")
        index = self._index(key)
        for member, score in mapping.items():
            self._args += ["Z", index, score, member]

    def expire(self, key: str, seconds: int) -> None:
        self._args += ["E", self._index(key), seconds]

    def queue_on(self, pipe: Pipe) -> None:
        if self._args:
            pipe.eval(WRITE_SCRIPT, len(self._keys), *self._keys, *self._args)

    def _index(self, key: str) -> int:
        # 1-based, as Lua's KEYS is.
        return self._keys.setdefault(key, len(self._keys) + 1)
