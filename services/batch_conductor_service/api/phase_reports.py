"""Records the batch-level step outcomes BOS reports over HTTP, through the repository that
events write to: success completes the step, failure leaves it not complete (the original BCS
pruned the step either way)."""

from collections.abc import Callable
from datetime import UTC, datetime

from batch_conductor_service.domain.batch_state import BatchChange, StepOutcome
from batch_conductor_service.domain.step_graph import StepGraph
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from common_core.enums import BatchPhaseStatus
from huleedu_service_libs.log_bounds import clip_id
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)


class UnknownPhaseError(LookupError):
    def __init__(self, phase_name: str, known_steps: list[str]):
        super().__init__(f"unknown phase {phase_name!r}")
        self.phase_name = phase_name
        self.known_steps = known_steps


class PhaseReportService:
    def __init__(
        self,
        graph: StepGraph,
        repository: BatchStateRepositoryProtocol,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._graph = graph
        self._repository = repository
        self._clock = clock

    async def record(self, batch_id: str, phase_name: str, success: bool) -> None:
        """Raises UnknownPhaseError for a step pipelines.yaml lacks (its outcome could never
        prune anything), StateStoreUnavailableError when the store cannot take it."""
        if phase_name not in self._graph.steps:
            raise UnknownPhaseError(phase_name, list(self._graph.order))
        # Stamped when received, and with no event id: the latest report decides, a report
        # that repeats the latest outcome changes nothing (true, false, true ends complete).
        status = (
            BatchPhaseStatus.COMPLETED_SUCCESSFULLY
            if success
            else BatchPhaseStatus.FAILED_CRITICALLY
        )
        received_at = self._clock()
        change = BatchChange(
            batch_id,
            received_at,
            outcome_step=phase_name,
            outcome=StepOutcome(status, received_at),
        )
        await self._repository.apply([change])
        logger.info(
            "phase_completion_recorded",
            batch_id=clip_id(batch_id),
            phase_name=phase_name,
            success=success,
        )
