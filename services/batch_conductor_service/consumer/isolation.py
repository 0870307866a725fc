"""Stores a fetch's good messages and singles out the ones that cannot be stored.

The failure rule (README, "Failures"): an outage of our own infrastructure
(StateStoreUnavailableError) is nobody's message's fault and propagates, so the caller commits
nothing and retries the whole fetch. Any other exception from a write is taken to be caused by
one of the messages in it: the write is split in halves until the failing messages stand alone
(every change is idempotent, so writing a half again is harmless), each of those is tried a
bounded number of times, and one that still fails is poison, to be dead-lettered by the caller
while the rest of the fetch is stored and committed.
"""

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from batch_conductor_service.consumer.fetched_batch import GoodMessage
from batch_conductor_service.domain.batch_state import ApplyResult
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from huleedu_service_libs.log_bounds import clip_error
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    item: GoodMessage
    result: ApplyResult


@dataclass(frozen=True, slots=True)
class PoisonMessage:
    item: GoodMessage
    error: Exception
    attempts: int


@dataclass(frozen=True, slots=True)
class IsolatedWrite:
    stored: list[StoredMessage]
    poison: list[PoisonMessage]


class IsolatingWriter:
    def __init__(
        self,
        repository: BatchStateRepositoryProtocol,
        *,
        max_attempts: int,
        retry_delay_seconds: float,
        on_isolation: Callable[[], None] = lambda: None,
    ) -> None:
        self._repository = repository
        self._attempts = max_attempts
        self._delay = retry_delay_seconds
        self._on_isolation = on_isolation

    async def write(self, good: Sequence[GoodMessage]) -> IsolatedWrite:
        """Raises StateStoreUnavailableError (an outage) and nothing else."""
        if not good:
            return IsolatedWrite([], [])
        return await self._write(list(good))

    async def _write(self, items: list[GoodMessage]) -> IsolatedWrite:
        try:
            results = await self._repository.apply_many([item.event.change for item in items])
        except StateStoreUnavailableError:
            raise
        except Exception as exc:
            if len(items) == 1:
                return await self._retry_alone(items[0], exc)
            self._on_isolation()
            logger.warning(
                "store_write_failed_isolating", messages=len(items), error=clip_error(exc)
            )
            middle = len(items) // 2
            left = await self._write(items[:middle])
            right = await self._write(items[middle:])
            return IsolatedWrite(left.stored + right.stored, left.poison + right.poison)
        return IsolatedWrite([StoredMessage(i, r) for i, r in zip(items, results, strict=True)], [])

    async def _retry_alone(self, item: GoodMessage, first_error: Exception) -> IsolatedWrite:
        error = first_error
        for attempt in range(2, self._attempts + 1):
            # A short pause: a rival's lock or a rolled-back transaction may be what failed.
            await asyncio.sleep(self._delay * (attempt - 1))
            try:
                (result,) = await self._repository.apply_many([item.event.change])
            except StateStoreUnavailableError:
                raise
            except Exception as exc:
                error = exc
                continue
            return IsolatedWrite([StoredMessage(item, result)], [])
        return IsolatedWrite([], [PoisonMessage(item, error, self._attempts)])
