"""The seams of the service: what the consumer and the HTTP API need of the stores and of the
dead-letter topic. Implementations live in stores/ and dead_letter/, wired in wiring/."""

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchChange,
    BatchCounts,
    ParkedResult,
)
from batch_conductor_service.domain.resolution_rules import Resolution
from batch_conductor_service.health import ComponentHealth
from huleedu_service_libs.trace_context import NO_TRACE, TraceCarrier


class BatchStateRepositoryProtocol(Protocol):
    """Stores the batches' facts. Raises StateStoreUnavailableError when it cannot answer.

    `apply` follows domain.batch_state.merge: idempotent by event id, and concurrent writers
    to one batch never lose a fact. Once it returns, the changes are stored; if it raises, some
    may be stored (in PostgreSQL, not yet in Redis) and applying them again completes them."""

    async def counts(self, batch_id: str) -> BatchCounts:
        """What /define needs; empty counts for a batch the store holds nothing of."""
        ...

    async def apply(self, changes: Sequence[BatchChange]) -> list[ApplyResult]: ...

    async def health(self) -> dict[str, ComponentHealth]:
        """One entry per backing store, keyed by the name /healthz shows."""
        ...


class EssayPlacementProtocol(Protocol):
    """Which batches' rosters name an essay, and the results that named no batch, parked by
    essay until a roster names it (bounded in number and in time). Raises
    StateStoreUnavailableError when it cannot answer.

    The consumer orders its calls so that a roster and a result racing each other always meet:
    a roster's essays are indexed before the parked results are read, a result is parked before
    the index is read again (consumer/pipeline.py, `_place`)."""

    async def index_rosters(self, rosters: Mapping[str, Collection[str]]) -> None:
        """Records, for each batch id, that its roster names these essays."""
        ...

    async def batches_of(self, essay_ids: Collection[str]) -> dict[str, frozenset[str]]:
        """The batches whose rosters name each essay; an essay no roster names is left out."""
        ...

    async def park(self, results: Sequence[ParkedResult]) -> list[ParkedResult]:
        """Parks the results; returns those refused because the lot is full."""
        ...

    async def parked_for(self, essay_ids: Collection[str]) -> dict[str, list[ParkedResult]]: ...

    async def unpark(self, results: Sequence[ParkedResult]) -> None:
        """Removes placed results: each is placed once, by the roster that first names it."""
        ...

    async def health(self) -> dict[str, ComponentHealth]: ...


class PipelineResolutionServiceProtocol(Protocol):
    async def resolve(
        self,
        batch_id: str,
        requested_pipeline: str,
        batch_metadata: Mapping[str, Any] | None = None,
    ) -> Resolution:
        """Raises UnknownPipelineError, PreconditionFailedError (a flag that pipelines.yaml
        requires is missing or falsy in batch_metadata) or StateStoreUnavailableError."""
        ...

    async def inspect(self, batch_id: str) -> tuple[BatchCounts, tuple[str, ...]] | None:
        """The batch's counts and the steps to report of it; None for a batch the store
        holds nothing of. Raises StateStoreUnavailableError like `resolve`."""
        ...


class DlqProducerProtocol(Protocol):
    async def send(
        self,
        *,
        original_topic: str,
        payload: bytes,
        reason: str,
        error: str,
        partition: int | None = None,
        offset: int | None = None,
        correlation_id: str | None = None,
        # The failed message's headers: one replayed from a DLQ record gets no second record.
        headers: Sequence[tuple[str, bytes | None]] | None = None,
        # The W3C trace context of the failed message's processing, kept in the record.
        trace_context: TraceCarrier = NO_TRACE,
    ) -> bool:
        """Whether a record was appended (none for a message replayed from a record that still
        stands for it)."""
        ...
