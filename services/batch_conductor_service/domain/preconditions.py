"""Request preconditions from pipelines.yaml: the batch_metadata flags a pipeline requires.

The current platform refuses `ai_feedback`, `cj_assessment` and `nlp` unless
`batch_metadata.prompt_attached` is truthy; the shipped pipelines file says so for those three.
A request that sends no batch_metadata (the seed-era BOS) is not checked, as the API's contract
asks (docs/design.md).
Truthy as in Python, as the original tested it: "yes" passes, 0, "", null and false do not.
"""

from collections.abc import Mapping
from typing import Any

from batch_conductor_service.domain.resolution_rules import PipelinePlan, RequestKind
from batch_conductor_service.domain.step_graph import StepGraph


class PreconditionFailedError(ValueError):
    def __init__(self, requested: str, failed: dict[str, str]):
        named = ", ".join(f"batch_metadata.{flag} ({why})" for flag, why in failed.items())
        super().__init__(f"pipeline {requested!r} requires a truthy {named}")
        self.requested = requested
        self.failed = failed


def check_preconditions(
    graph: StepGraph, request: PipelinePlan, batch_metadata: Mapping[str, Any] | None
) -> None:
    """Raises PreconditionFailedError naming each required flag that is missing or falsy."""
    if batch_metadata is None or request.kind is not RequestKind.PIPELINE:
        return
    failed: dict[str, str] = {}
    for flag in graph.preconditions.get(request.requested, ()):
        if flag not in batch_metadata:
            failed[flag] = "missing"
        elif not batch_metadata[flag]:
            failed[flag] = f"is {batch_metadata[flag]!r}"
    if failed:
        raise PreconditionFailedError(request.requested, failed)
