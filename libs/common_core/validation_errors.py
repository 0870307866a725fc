"""One way to put a pydantic ValidationError into words, for every place that reports one: HTTP
answers, dead-letter records, settings and the pipelines file."""

from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str  # the dotted location, or the caller's name for the whole value
    message: str
    input: object


def field_problems(exc: ValidationError, *, prefix: str = "", root: str = "") -> list[FieldProblem]:
    """`prefix` goes before every dotted location (`data.`); `root` names a problem with the
    value as a whole, which pydantic locates nowhere."""
    return [
        FieldProblem(
            f"{prefix}{'.'.join(str(part) for part in error['loc'])}" if error["loc"] else root,
            error["msg"],
            error.get("input"),
        )
        for error in exc.errors()
    ]


def describe_problems(
    exc: ValidationError, *, prefix: str = "", root: str = "", limit: int | None = None
) -> str:
    """`field: message; field: message`, at most `limit` of them."""
    problems = field_problems(exc, prefix=prefix, root=root)[:limit]
    return "; ".join(f"{problem.field}: {problem.message}" for problem in problems)
