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
    if not isinstance(raw, dict):
        # Said plainly: the validator's words for this ("<root>: Input should be a valid
        # dictionary or instance of PipelinesFile") name a class, not the file's shape.
        found = "the file is empty" if raw is None else f"it holds a {_yaml_kind(raw)}"
        raise PipelineConfigError(
            f"{source}: expected a mapping with a 'pipelines' key (and optionally 'steps'), "
            f"but {found}"
        )
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
        # Named as looked up, so that a run from another directory shows where it looked.
        setting = f"BCS_PIPELINES_PATH={path}"
        if not path.is_absolute():
            setting += ", relative to the working directory"
        raise PipelineConfigError(
            f"cannot read pipelines file {path.absolute()} ({setting}): {exc.strerror}"
        ) from exc
    return parse_pipelines(text, source=str(path))


def _yaml_kind(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "plain string"
    return type(value).__name__
