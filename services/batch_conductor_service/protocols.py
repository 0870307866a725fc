"""The seams of the service. Implementations live in stores/, consumer/ and dead_letter/, and
are wired in wiring/providers.py."""

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from batch_conductor_service.domain.batch_counts import BatchCounts
from batch_conductor_service.domain.batch_report import BatchReport
from batch_conductor_service.domain.batch_state import ApplyResult, BatchSnapshot, BatchStateChange
from batch_conductor_service.domain.placement import UnplacedResult
from batch_conductor_service.domain.resolution_rules import Resolution
from batch_conductor_service.health import ComponentHealth


class BatchStateRepositoryProtocol(Protocol):
    """Stores the batch projection. Raises StateStoreUnavailableError when it cannot answer.

    Once `apply` returns, the change is stored. Applying is idempotent by `event_id` and
    order-insensitive (outcomes only move forward), and concurrent writers to one batch never
    lose a fact; a reader never sees a change half applied unless a write had to fall back to
    single-command writes, which DESIGN.md allows because each of them is itself safe. If
    `apply` raises, the change may be partly stored (in PostgreSQL, not yet in Redis); applying
    it again completes it.
    """

    async def get_snapshot(self, batch_id: str) -> BatchSnapshot: ...

    async def get_counts(self, batch_id: str) -> BatchCounts:
        """What /define needs, as `BatchCounts.of(get_snapshot(...))` would give it, counted
        where the facts are: its cost does not grow with the number of essays."""
        ...

    async def apply(self, change: BatchStateChange) -> ApplyResult: ...

    async def apply_many(self, changes: Sequence[BatchStateChange]) -> list[ApplyResult]:
        """Same as `apply` for each change in order, in as few round trips as the store allows."""
        ...

    async def health(self) -> dict[str, ComponentHealth]:
        """One entry per backing store, keyed by the name /healthz shows."""
        ...


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


class BatchInspectionServiceProtocol(Protocol):
    async def inspect(self, batch_id: str) -> BatchReport | None: ...


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
    ) -> None: ...


class EssayPlacementProtocol(Protocol):
    """Which batches' rosters name an essay, and the results that named no batch, kept by essay
    for as long as batch state lives. Raises StateStoreUnavailableError when it cannot answer.

    Writers order their calls so that a roster and a result racing each other always meet: a
    roster's essays are indexed before the kept results are read, a result is kept before the
    index is read (consumer/placement_step.py).
    """

    async def index_rosters(self, rosters: Mapping[str, Collection[str]]) -> None:
        """Records, for each batch id, that its roster names these essays."""
        ...

    async def batches_of(self, essay_ids: Collection[str]) -> dict[str, frozenset[str]]:
        """The batches whose rosters name each essay; an essay no roster names is left out."""
        ...

    async def keep(self, results: Sequence[UnplacedResult]) -> None: ...

    async def kept_for(self, essay_ids: Collection[str]) -> dict[str, list[UnplacedResult]]: ...
