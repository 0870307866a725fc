"""The one formatter of pydantic validation errors, and that every reporter uses it alike."""

import pytest
from pydantic import BaseModel, ValidationError

from common_core.validation_errors import describe_problems, field_problems


class Inner(BaseModel):
    count: int


class Outer(BaseModel):
    name: str
    inner: Inner


def error_of(value: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate(value)
    return caught.value


def test_locations_are_dotted_and_carry_the_prefix() -> None:
    problems = field_problems(error_of({"inner": {"count": "x"}}), prefix="data.")
    assert [(p.field, p.input) for p in problems] == [
        ("data.name", {"inner": {"count": "x"}}),
        ("data.inner.count", "x"),
    ]


def test_a_problem_with_the_whole_value_takes_the_root_name() -> None:
    [problem] = field_problems(error_of([1]), root="<root>")
    assert problem.field == "<root>"
    assert "dictionary" in problem.message


def test_the_description_joins_at_most_the_limit() -> None:
    described = describe_problems(error_of({"inner": {"count": "x"}}), limit=1)
    assert described == "name: Field required"
