"""Reads one payload by whichever of its known formats accepts it.

The payload itself decides: each format scores how strongly the payload claims to be written in
it (keys or values only that format writes), the formats are tried in that order and the first
that validates wins. When none does, the error reported is the one of the format the payload
came closest to: the fewest validation errors, ties going to the stronger claim.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from common_core.events.building_blocks import ContractModel
from common_core.events.readings import Generation, Reading
from common_core.validation_errors import field_problems

ModelT = TypeVar("ModelT", bound=ContractModel)
Claim = Callable[[Mapping[str, Any]], int]


def has_paths(*paths: str) -> Claim:
    """A claim counting which of these dotted key paths the payload has. It runs for every
    format of every consumed event, so it walks the paths in one plain loop."""
    split = tuple(tuple(path.split(".")) for path in paths)

    def claim(payload: Mapping[str, Any]) -> int:
        found = 0
        for keys in split:
            node: Any = payload
            for key in keys:
                # A parsed JSON object is a dict: checked first, as the Mapping check (an ABC)
                # costs several times more.
                if (type(node) is not dict and not isinstance(node, Mapping)) or key not in node:
                    break
                node = node[key]
            else:
                found += 1
        return found

    return claim


@dataclass(frozen=True, slots=True)
class PayloadFormat(Generic[ModelT]):
    generation: Generation
    model: type[ModelT]
    claim: Claim
    read: Callable[[ModelT], Reading]

    def validate(self, payload: Mapping[str, Any]) -> Reading:
        return self.read(self.model.model_validate(payload))


class PayloadRejectedError(ValueError):
    """No known format accepts the payload; `problems` are those of the closest format."""

    def __init__(self, generation: Generation, model: str, problems: list[str]):
        super().__init__(f"{model} ({generation.value}): {'; '.join(problems[:10])}")
        self.generation = generation
        self.model = model
        self.problems = problems


def read_payload(
    formats: Sequence[PayloadFormat[Any]], payload: Mapping[str, Any]
) -> tuple[Generation, Reading]:
    claims = [fmt.claim(payload) for fmt in formats]
    # sorted() is stable: on equal claims the table's order (seed era first) decides.
    ranked = sorted(zip(claims, formats, strict=True), key=lambda pair: -pair[0])
    rejections: list[tuple[int, int, PayloadFormat[Any], ValidationError]] = []
    for rank, (_claim, fmt) in enumerate(ranked):
        try:
            return fmt.generation, fmt.validate(payload)
        except ValidationError as exc:
            rejections.append((exc.error_count(), rank, fmt, exc))
    _, _, closest, error = min(rejections, key=lambda item: (item[0], item[1]))
    raise PayloadRejectedError(closest.generation, closest.model.__name__, _problems(error))


def _problems(error: ValidationError) -> list[str]:
    return [
        f"{problem.field}: {problem.message}"
        for problem in field_problems(error, prefix="data.", root="data")
    ]
