"""Loads pipelines.yaml into a validated StepGraph; the only way the service gets its graph."""

from pathlib import Path

import yaml
from pydantic import ValidationError

from batch_conductor_service.domain.step_graph import (
    PipelineConfigError,
    PipelinesFile,
    StepGraph,
    build_step_graph,
)
from common_core.validation_errors import describe_problems


def parse_pipelines(text: str, source: str = "<string>") -> StepGraph:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PipelineConfigError(f"{source}: not valid YAML: {exc}") from exc
    try:
        config = PipelinesFile.model_validate(raw)
    except ValidationError as exc:
        problems = describe_problems(exc, root="<root>")
        raise PipelineConfigError(f"{source}: {problems}") from exc
    try:
        return build_step_graph(config)
    except PipelineConfigError as exc:
        raise PipelineConfigError(f"{source}: {exc}") from exc


def load_pipelines(path: Path) -> StepGraph:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PipelineConfigError(f"cannot read pipelines file {path}: {exc.strerror}") from exc
    return parse_pipelines(text, source=str(path))
