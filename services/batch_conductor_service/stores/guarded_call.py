"""One way for every store to turn its client's outage errors into StateStoreUnavailableError,
counted, behind its circuit breaker."""

from collections.abc import Awaitable, Callable
from typing import TypeVar

from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.circuit_breaker import CircuitBreaker

T = TypeVar("T")


async def guarded_store_call(
    breaker: CircuitBreaker,
    outage_errors: tuple[type[BaseException], ...],
    metrics: BcsMetrics,
    operation: str,
    run: Callable[[], Awaitable[T]],
) -> T:
    async def translated() -> T:
        try:
            return await run()
        except outage_errors as exc:
            metrics.repository_errors.labels(breaker.store, operation).inc()
            raise StateStoreUnavailableError(
                breaker.store, f"{type(exc).__name__}: {exc}", breaker.reset_seconds
            ) from exc

    return await breaker.call(translated)
