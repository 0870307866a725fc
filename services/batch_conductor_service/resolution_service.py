from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter

from batch_conductor_service.domain.batch_state import BatchCounts
from batch_conductor_service.domain.preconditions import (
    PreconditionFailedError,
    check_preconditions,
)
from batch_conductor_service.domain.resolution_rules import (
    PipelinePlan,
    Resolution,
    UnknownPipelineError,
    plan,
    prune,
)
from batch_conductor_service.domain.step_graph import StepGraph
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import BatchStateRepositoryProtocol


class PipelineResolutionService:
    """Reads the batch's state and hands it to the pure resolver (or, for an operator, to the
    pure report of each step); counts the outcome."""

    def __init__(
        self, graph: StepGraph, repository: BatchStateRepositoryProtocol, metrics: BcsMetrics
    ) -> None:
        self._graph = graph
        self._repository = repository
        self._metrics = metrics
        # Plans depend on the graph and the name alone, and only known names are planned: a
        # bounded memo, not state.
        self._plans: dict[str, PipelinePlan] = {}
        self._succeeded = metrics.pipeline_resolutions.labels("success")
        # Steps come from the graph: a bounded set of label children, each looked up once.
        self._pruned: dict[str, Counter] = {}

    async def resolve(
        self,
        batch_id: str,
        requested_pipeline: str,
        batch_metadata: Mapping[str, Any] | None = None,
    ) -> Resolution:
        try:
            request = self._plan(requested_pipeline)
        except UnknownPipelineError:
            self._metrics.pipeline_resolutions.labels("unknown_pipeline").inc()
            raise
        try:
            # Before any state is read: a refused request costs no round trip.
            check_preconditions(self._graph, request, batch_metadata)
        except PreconditionFailedError:
            self._metrics.pipeline_resolutions.labels("precondition_failed").inc()
            raise
        try:
            counts = await self._repository.counts(batch_id)
        except StateStoreUnavailableError:
            self._metrics.pipeline_resolutions.labels("state_unavailable").inc()
            raise
        except Exception:
            # Counted, then left to the app's 500 handler: a bug is never a quiet answer.
            self._metrics.pipeline_resolutions.labels("failure").inc()
            raise
        resolution = prune(self._graph, request, counts)
        self._succeeded.inc()
        for pruned in resolution.pruned:
            self._pruned_counter(pruned.step).inc()
        return resolution

    async def inspect(self, batch_id: str) -> tuple[BatchCounts, tuple[str, ...]] | None:
        """The same single read /define makes, and the steps to report: the graph's in order,
        then any the batch has facts of that the graph lacks. None for a batch the store holds
        nothing of (never seen, or expired)."""
        counts = await self._repository.counts(batch_id)
        if counts.is_empty:
            return None
        recorded = {*counts.steps, *counts.latest} - set(self._graph.order)
        return counts, (*self._graph.order, *sorted(recorded))

    def _pruned_counter(self, step: str) -> Counter:
        counter = self._pruned.get(step)
        if counter is None:
            counter = self._pruned[step] = self._metrics.pipeline_steps_pruned.labels(step)
        return counter

    def _plan(self, requested_pipeline: str) -> PipelinePlan:
        name = requested_pipeline.strip()
        known = self._plans.get(name)
        if known is None:
            known = self._plans[name] = plan(self._graph, name)
        return known
