"""Read commands of concurrent callers sent over one connection, in exchanges that carry every
command waiting at the time.

A command sent through redis-py's client or pipeline pays for taking and checking a pooled
connection, a timeout per reply and a task per send; on /define's count read that was more of a
request's time than the read itself. A channel holds one connection of the client's pool for its
lifetime. While an exchange is on the wire, newly asked commands wait; the next exchange takes
them all, so a busy replica sends many reads per round trip and an idle one sends each at once.
Replies come back in the order the commands went out (Redis answers a connection in order).

Only for commands that can be sent twice (reads): after a connection error the exchange is
repeated once on a new connection, as the client's own retry would. The connection closes with
the client: `Redis.aclose` disconnects the pool's connections, those in use too.
"""

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = tuple[str | int, ...]


class ReadChannel:
    def __init__(self, pool: ConnectionPool, timeout_seconds: float | None) -> None:
        self._pool = pool
        self._timeout = timeout_seconds
        self._connection: AbstractConnection | None = None
        self._waiting: list[tuple[Command, asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, client: Redis) -> "ReadChannel":
        """With the client's socket timeout, applied to each exchange as a whole."""
        pool = client.connection_pool
        timeout = pool.connection_kwargs.get("socket_timeout")
        return cls(pool, None if timeout is None else float(timeout))

    async def call(self, *command: str | int) -> Any:
        """The command's reply; an error reply is raised as redis-py raises it."""
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((command, reply))
        if self._sender is None:
            # A task's first step runs on the loop's next turn: what else this turn asks joins.
            self._sender = asyncio.ensure_future(self._send_waiting())
        return await reply

    async def _send_waiting(self) -> None:
        try:
            while self._waiting:
                calls, self._waiting = self._waiting, []
                await self._exchange(calls)
        finally:
            self._sender = None
            # Only when cancelled (the loop shutting down) is anything left here.
            for _, reply in self._waiting:
                reply.cancel()
            self._waiting = []

    async def _exchange(self, calls: list[tuple[Command, "asyncio.Future[Any]"]]) -> None:
        try:
            replies = await self._replies([command for command, _ in calls])
        except Exception as exc:
            for _, reply in calls:
                if not reply.done():
                    reply.set_exception(exc)
            return
        except BaseException:
            for _, reply in calls:
                reply.cancel()
            raise
        for (_, reply), value in zip(calls, replies, strict=True):
            if reply.done():  # its caller went away meanwhile
                continue
            if isinstance(value, ResponseError):
                reply.set_exception(value)
            else:
                reply.set_result(value)

    async def _replies(self, commands: list[Command]) -> list[Any]:
        for attempt in (1, 2):
            connection = await self._held()
            try:
                async with asyncio.timeout(self._timeout):
                    packed = connection.pack_commands(commands)
                    await connection.send_packed_command(packed, check_health=False)
                    return [await _reply(connection) for _ in commands]
            except TimeoutError:  # before OSError, its base class
                await connection.disconnect(nowait=True)
                raise RedisTimeoutError(
                    f"no reply from Redis within {self._timeout} seconds"
                ) from None
            except (RedisConnectionError, OSError):
                # A connection the server closed (a restart) fails the first exchange on it.
                await connection.disconnect(nowait=True)
                if attempt == 2:
                    raise
            except BaseException:
                # Cut off part way: replies still due would answer the next exchange.
                await connection.disconnect(nowait=True)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _held(self) -> AbstractConnection:
        if self._connection is None:
            connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
            # The exchange as a whole is timed (above); redis-py would time each reply and
            # start a task per send. The connection is never handed back, so no other user of
            # the pool sees this.
            connection.socket_timeout = None
            self._connection = connection
        return self._connection


async def _reply(connection: AbstractConnection) -> Any:
    try:
        return await connection.read_response()
    except ResponseError as exc:
        # An error reply is one command's answer; the connection stays in step.
        return exc
