"""Pure resolution: which steps a batch still needs, in order, and why. No I/O."""

from dataclasses import dataclass
from enum import StrEnum

from batch_conductor_service.domain.batch_state import BatchCounts, step_completion
from batch_conductor_service.domain.step_graph import StepGraph


class UnknownPipelineError(LookupError):
    def __init__(self, requested: str, known_pipelines: list[str], known_steps: list[str]):
        super().__init__(f"unknown pipeline or step {requested!r}")
        self.requested = requested
        self.known_pipelines = known_pipelines
        self.known_steps = known_steps


class RequestKind(StrEnum):
    PIPELINE = "pipeline"
    STEP = "step"


@dataclass(frozen=True, slots=True)
class PrunedStep:
    step: str
    reason: str


@dataclass(frozen=True, slots=True)
class Resolution:
    batch_id: str
    requested: str
    kind: RequestKind
    final_pipeline: tuple[str, ...]
    stages: tuple[tuple[str, ...], ...]
    added_dependencies: tuple[str, ...]
    pruned: tuple[PrunedStep, ...]
    observations: tuple[str, ...]

    @property
    def summary(self) -> str:
        parts = [f"Resolved {self.kind} '{self.requested}' for batch '{self.batch_id}'."]
        if self.added_dependencies:
            parts.append(f"Added dependencies: {', '.join(self.added_dependencies)}.")
        for pruned in self.pruned:
            parts.append(f"Pruned {pruned.step}: {pruned.reason}.")
        for note in self.observations:
            # A sentence opening with a step name keeps it as spelled: cj_assessment, not
            # Cj_assessment.
            opens_with_step = note.split(" ", 1)[0] in self.final_pipeline
            parts.append(f"{note}." if opens_with_step else f"{note[:1].upper()}{note[1:]}.")
        if self.final_pipeline:
            parts.append(f"Steps to run: {', '.join(self.final_pipeline)}.")
        else:
            parts.append("Every step is already complete; nothing to run.")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class PipelinePlan:
    """What a request needs before looking at the batch: every step, dependencies first."""

    requested: str
    kind: RequestKind
    steps: tuple[str, ...]
    added_dependencies: tuple[str, ...]


def plan(graph: StepGraph, requested: str) -> PipelinePlan:
    """Raises UnknownPipelineError, so a bad name is refused before any state is read."""
    name = requested.strip()
    if name in graph.pipelines:
        kind, wanted = RequestKind.PIPELINE, graph.pipelines[name]
    elif name in graph.steps:
        kind, wanted = RequestKind.STEP, (name,)
    else:
        raise UnknownPipelineError(name, sorted(graph.pipelines), sorted(graph.steps))
    needed = graph.ordered(graph.closure(wanted))
    added = tuple(step for step in needed if step not in wanted)
    return PipelinePlan(name, kind, needed, added)


def prune(graph: StepGraph, request: PipelinePlan, counts: BatchCounts) -> Resolution:
    pruned: list[PrunedStep] = []
    observations: list[str] = []
    remaining: list[str] = []
    for step in request.steps:
        completion = step_completion(step, counts)
        if completion.complete:
            pruned.append(PrunedStep(step, completion.reason))
            continue
        remaining.append(step)
        if completion.has_evidence:
            observations.append(f"{step} is not complete: {completion.reason}")
        failures = counts.counts_for(step).failed
        if failures and step not in counts.latest:
            observations.append(f"{step} failed for {failures} essays so far")
    return Resolution(
        batch_id=counts.batch_id,
        requested=request.requested,
        kind=request.kind,
        final_pipeline=tuple(remaining),
        stages=_stages(graph, remaining),
        added_dependencies=request.added_dependencies,
        pruned=tuple(pruned),
        observations=tuple(observations),
    )


def _stages(graph: StepGraph, remaining: list[str]) -> tuple[tuple[str, ...], ...]:
    """Groups steps that may run in parallel: each stage follows its latest pending dependency.

    Dependencies are followed through pruned steps: when B is done but A (which B needed) is
    not, a C that needs B still waits for A, since BOS will re-run A before anything after it.
    """
    stage_of: dict[str, int] = {}
    for step in remaining:
        pending = [stage_of[dep] for dep in graph.upstream[step] if dep in stage_of]
        stage_of[step] = max(pending, default=-1) + 1
    stages: list[list[str]] = [[] for _ in range(max(stage_of.values(), default=-1) + 1)]
    for step in remaining:
        stages[stage_of[step]].append(step)
    return tuple(tuple(stage) for stage in stages)
