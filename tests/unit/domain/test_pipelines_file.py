from pathlib import Path

import pytest

from batch_conductor_service.domain.pipelines_file import load_pipelines, parse_pipelines
from batch_conductor_service.domain.step_graph import PipelineConfigError

REPO_PIPELINES = Path(__file__).resolve().parents[3] / "pipelines.yaml"


def step(name: str, *deps: str, service: str = "svc") -> str:
    return (
        f"      - name: {name}\n"
        f"        service_name: {service}\n"
        f"        event_type: evt.{name}\n"
        f"        event_data_model: Model\n"
        f"        depends_on: [{', '.join(deps)}]\n"
    )


def pipeline(name: str, *steps: str) -> str:
    return f"  {name}:\n    steps:\n" + "".join(steps)


def config(*pipelines: str) -> str:
    return "pipelines:\n" + "".join(pipelines)


def test_shipped_pipelines_file_defines_the_four_pipelines() -> None:
    graph = load_pipelines(REPO_PIPELINES)
    assert graph.pipelines == {
        "nlp": ("spellcheck", "nlp"),
        "cj_assessment": ("spellcheck", "cj_assessment"),
        "ai_feedback": ("spellcheck", "nlp", "ai_feedback"),
        "comprehensive": ("spellcheck", "nlp", "cj_assessment", "ai_feedback"),
    }
    assert graph.steps["ai_feedback"].depends_on == ("spellcheck", "nlp")
    assert graph.steps["cj_assessment"].depends_on == ("spellcheck",)
    assert graph.steps["spellcheck"].depends_on == ()


def test_every_shipped_step_names_its_service_event_and_model() -> None:
    for definition in load_pipelines(REPO_PIPELINES).steps.values():
        assert definition.service_name
        assert definition.event_type
        assert definition.event_data_model


def test_order_breaks_ties_by_position_in_the_file() -> None:
    graph = parse_pipelines(config(pipeline("p", step("b"), step("a"), step("c", "a", "b"))))
    assert graph.order == ("b", "a", "c")


def test_dependencies_come_first_even_when_listed_later() -> None:
    graph = parse_pipelines(config(pipeline("p", step("late", "early"), step("early"))))
    assert graph.order == ("early", "late")


def test_dependency_on_unknown_step_is_rejected_with_its_name() -> None:
    with pytest.raises(PipelineConfigError, match="'a' depends on unknown step 'ghost'"):
        parse_pipelines(config(pipeline("p", step("a", "ghost"))))


def test_cycle_is_rejected_with_its_path() -> None:
    text = config(pipeline("p", step("a", "c"), step("b", "a"), step("c", "b")))
    with pytest.raises(PipelineConfigError, match=r"dependency cycle: a -> c -> b -> a"):
        parse_pipelines(text)


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(PipelineConfigError, match="dependency cycle: a -> a"):
        parse_pipelines(config(pipeline("p", step("a", "a"))))


def test_step_listed_twice_in_one_pipeline_is_rejected() -> None:
    with pytest.raises(PipelineConfigError, match="lists step 'a' more than once"):
        parse_pipelines(config(pipeline("p", step("a"), step("a"))))


def test_step_defined_differently_in_two_pipelines_is_rejected() -> None:
    text = config(
        pipeline("p1", step("a"), step("b", "a")),
        pipeline("p2", step("a"), step("b")),
    )
    with pytest.raises(PipelineConfigError, match="step 'b' is defined differently"):
        parse_pipelines(text)


def test_same_step_defined_identically_in_two_pipelines_is_one_step() -> None:
    graph = parse_pipelines(config(pipeline("p1", step("a")), pipeline("p2", step("a"))))
    assert list(graph.steps) == ["a"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("pipelines: [1, 2", "not valid YAML"),
        ("[]", "expected a mapping with a 'pipelines' key .* but it holds a list"),
        ("", "expected a mapping with a 'pipelines' key .* but the file is empty"),
        ("# only a comment\n", "but the file is empty"),
        ("pipelines", "but it holds a plain string"),
        ("pipelines: {}", "pipelines"),
        ("pipelines:\n  p:\n    steps: []\n", "pipelines.p.steps"),
        (config(pipeline("p", step("Bad-Name"))), "pipelines.p.steps.0.name"),
        ("pipelines:\n  p:\n    steps:\n      - {name: a, service_name: ''}\n", "service_name"),
        (config(pipeline("p", step("a", "b", "b"), step("b"))), "more than once"),
        (config(pipeline("p", step("a"))).replace("depends_on", "needs"), "needs"),
    ],
)
def test_malformed_file_is_rejected_naming_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(PipelineConfigError, match=fragment):
        parse_pipelines(text, source="pipelines.yaml")


def test_missing_file_is_reported_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(PipelineConfigError) as raised:
        load_pipelines(missing)
    assert str(raised.value) == (
        f"cannot read pipelines file {missing} (BCS_PIPELINES_PATH={missing}): "
        "No such file or directory"
    )


def test_a_relative_path_is_reported_as_the_absolute_path_looked_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As `bcs` run outside the repository, with the default BCS_PIPELINES_PATH.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineConfigError) as raised:
        load_pipelines(Path("pipelines.yaml"))
    assert str(raised.value) == (
        f"cannot read pipelines file {Path.cwd() / 'pipelines.yaml'} "
        "(BCS_PIPELINES_PATH=pipelines.yaml, relative to the working directory): "
        "No such file or directory"
    )


def test_closure_includes_transitive_dependencies() -> None:
    graph = parse_pipelines(config(pipeline("p", step("a"), step("b", "a"), step("c", "b"))))
    assert graph.closure(["c"]) == {"a", "b", "c"}
    assert graph.ordered(graph.closure(["c"])) == ("a", "b", "c")


def test_steps_library_order_comes_first_and_aliases_share_definitions() -> None:
    text = (
        "steps:\n"
        "  - &b {name: b, service_name: s, event_type: e, event_data_model: m, depends_on: []}\n"
        "  - &a {name: a, service_name: s, event_type: e, event_data_model: m, depends_on: []}\n"
        "pipelines:\n  p:\n    steps: [*a, *b]\n"
    )
    graph = parse_pipelines(text)
    assert graph.order == ("b", "a")
    assert graph.pipelines == {"p": ("a", "b")}


def test_a_pipeline_redefining_a_library_step_is_rejected() -> None:
    text = "steps:\n" + step("a").replace("      - ", "  - ").replace("        ", "    ")
    text += config(pipeline("p", step("a", service="other")))
    with pytest.raises(
        PipelineConfigError, match="step 'a' is defined differently in pipeline 'p'"
    ):
        parse_pipelines(text)


def test_a_step_listed_twice_in_the_library_is_rejected() -> None:
    library = "steps:\n" + (step("a") * 2).replace("      - ", "  - ").replace("        ", "    ")
    with pytest.raises(PipelineConfigError, match="defines step 'a' more than once"):
        parse_pipelines(library + config(pipeline("p", step("a"))))
