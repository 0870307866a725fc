"""Reads one batch's state for an operator: the same single read /define makes."""

from batch_conductor_service.domain.batch_report import BatchReport, report_batch
from batch_conductor_service.domain.step_graph import StepGraph
from batch_conductor_service.protocols import BatchStateRepositoryProtocol


class BatchInspectionService:
    def __init__(self, graph: StepGraph, repository: BatchStateRepositoryProtocol) -> None:
        self._graph = graph
        self._repository = repository

    async def inspect(self, batch_id: str) -> BatchReport | None:
        """None for an unknown batch; raises StateStoreUnavailableError like /define."""
        return report_batch(self._graph, await self._repository.get_snapshot(batch_id))
