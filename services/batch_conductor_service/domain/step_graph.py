"""The step graph of pipelines.yaml: its file schema, its validation and the validated graph."""

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator

_NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


class PipelineConfigError(ValueError):
    """pipelines.yaml cannot be turned into an orderable step graph."""


class StepDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME_PATTERN, max_length=100)
    depends_on: tuple[str, ...] = ()
    # Informational, as the platform's own pipelines file has them: which service runs the
    # step and the command BOS sends it. BCS does not read them; they are checked for shape.
    service_name: str | None = Field(default=None, min_length=1)
    event_type: str | None = Field(default=None, min_length=1)
    event_data_model: str | None = Field(default=None, min_length=1)

    @field_validator("depends_on")
    @classmethod
    def _no_repeated_dependency(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"lists a dependency more than once: {list(value)}")
        return value


class PipelineDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    steps: tuple[StepDefinition, ...] = Field(min_length=1)
    # Flags of the request's `batch_metadata` that must be truthy for this pipeline to be
    # resolved (domain/preconditions.py); a request without batch_metadata is not checked.
    requires_batch_metadata: tuple[str, ...] = ()

    @field_validator("requires_batch_metadata")
    @classmethod
    def _flag_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for flag in value:
            if not flag or flag != flag.strip() or len(flag) > 100:
                raise ValueError(f"invalid batch_metadata flag name {flag!r}")
        return value


class PipelinesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Optional library of step definitions, for YAML aliases to share; its order comes first.
    steps: tuple[StepDefinition, ...] = ()
    pipelines: dict[str, PipelineDefinition] = Field(min_length=1)

    @field_validator("pipelines")
    @classmethod
    def _pipeline_names(cls, value: dict[str, PipelineDefinition]) -> dict[str, PipelineDefinition]:
        for name in value:
            if not name or len(name) > 100 or name != name.strip():
                raise ValueError(f"invalid pipeline name {name!r}")
        return value


@dataclass(frozen=True)
class StepGraph:
    """A validated, acyclic step graph. `order` is the one topological order of all steps."""

    steps: Mapping[str, StepDefinition]
    pipelines: Mapping[str, tuple[str, ...]]
    order: tuple[str, ...]
    # Every step each step depends on, directly or not; computed once at load.
    upstream: Mapping[str, frozenset[str]]
    # Pipeline name -> the batch_metadata flags a request for it must carry truthy.
    preconditions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def closure(self, names: Iterable[str]) -> frozenset[str]:
        """The named steps with every step they depend on, directly or not."""
        wanted = set(names)
        return frozenset(wanted.union(*(self.upstream[step] for step in wanted)))

    def ordered(self, names: Iterable[str]) -> tuple[str, ...]:
        # Filtering the global order keeps dependencies first: a dependency-closed subset
        # is picked in the same relative order as a sort of the subset alone would give.
        wanted = set(names)
        return tuple(step for step in self.order if step in wanted)

    def require_steps(self, reported_by: Mapping[str, str]) -> None:
        """Refuses a graph that lacks a step some events report (step name -> which events):
        their results would be stored under a name no request can ever ask for."""
        for step, events in reported_by.items():
            if step not in self.steps:
                raise PipelineConfigError(
                    f"no step {step!r}, which {events} report; steps: {', '.join(self.order)}"
                )


def build_step_graph(config: PipelinesFile) -> StepGraph:
    steps: dict[str, StepDefinition] = {}
    pipelines: dict[str, tuple[str, ...]] = {}

    def register(step: StepDefinition, where: str) -> None:
        known = steps.get(step.name)
        if known is None:
            steps[step.name] = step
        elif known != step:
            raise PipelineConfigError(
                f"step {step.name!r} is defined differently in {where} than where it first appears"
            )

    for step in config.steps:
        if step.name in steps:
            raise PipelineConfigError(f"the steps list defines step {step.name!r} more than once")
        register(step, "the steps list")
    for pipeline_name, pipeline in config.pipelines.items():
        names: list[str] = []
        for step in pipeline.steps:
            if step.name in names:
                raise PipelineConfigError(
                    f"pipeline {pipeline_name!r} lists step {step.name!r} more than once"
                )
            names.append(step.name)
            register(step, f"pipeline {pipeline_name!r}")
        pipelines[pipeline_name] = tuple(names)
    for step in steps.values():
        for dependency in step.depends_on:
            if dependency not in steps:
                raise PipelineConfigError(
                    f"step {step.name!r} depends on unknown step {dependency!r}; "
                    f"known steps: {sorted(steps)}"
                )
    order = _topological_order(steps)
    upstream: dict[str, frozenset[str]] = {}
    for name in order:  # dependencies first, so theirs are already known
        direct = steps[name].depends_on
        upstream[name] = frozenset(direct).union(*(upstream[dep] for dep in direct))
    preconditions = {
        name: pipeline.requires_batch_metadata
        for name, pipeline in config.pipelines.items()
        if pipeline.requires_batch_metadata
    }
    return StepGraph(
        steps=steps,
        pipelines=pipelines,
        order=order,
        upstream=upstream,
        preconditions=preconditions,
    )


def _topological_order(steps: Mapping[str, StepDefinition]) -> tuple[str, ...]:
    """Kahn's algorithm; among ready steps the one that appears first in the file goes first."""
    position = {name: index for index, name in enumerate(steps)}
    waiting_on = {name: len(step.depends_on) for name, step in steps.items()}
    dependents: dict[str, list[str]] = {name: [] for name in steps}
    for name, step in steps.items():
        for dependency in step.depends_on:
            dependents[dependency].append(name)
    ready = [position[name] for name, count in waiting_on.items() if count == 0]
    heapq.heapify(ready)
    names = list(steps)
    order: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for dependent in dependents[name]:
            waiting_on[dependent] -= 1
            if waiting_on[dependent] == 0:
                heapq.heappush(ready, position[dependent])
    if len(order) != len(steps):
        cycle = _find_cycle(steps, {name for name, count in waiting_on.items() if count})
        raise PipelineConfigError(f"dependency cycle: {' -> '.join(cycle)}")
    return tuple(order)


def _find_cycle(steps: Mapping[str, StepDefinition], stuck: set[str]) -> list[str]:
    # Every stuck step has a stuck dependency, so walking dependencies must revisit a step.
    path: list[str] = []
    seen_at: dict[str, int] = {}
    current = min(stuck, key=list(steps).index)
    while current not in seen_at:
        seen_at[current] = len(path)
        path.append(current)
        current = next(dep for dep in steps[current].depends_on if dep in stuck)
    # Report it in "depends on" direction closing on itself, e.g. a -> b -> a.
    return [*path[seen_at[current] :], current]
