"""No request gets a 5xx: hypothesis sends every route bodies of any shape (fields of any
type, huge and hostile values, bytes that are not JSON), hostile correlation ids and paths."""

import json
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.hypothesis_profiles import examples
from tests.unit.conftest import AppFactory

# Figures quoted in docs/failures.md (the ci profile's; dev runs a tenth).
EXAMPLES = examples(150)

hostile_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["}", "{x}", "%", "\x00", "a\x00b", "\ud800", " ", "nlp", "spellcheck"]),
    st.integers(min_value=250, max_value=3000).map(lambda n: "x" * n),
)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "batch_id",
    "requested_pipeline",
    "correlation_id",
    "batch_metadata",
    "phase_name",
    "success",
]
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS) | hostile_text, values, max_size=6).map(
        lambda d: json.dumps(d).encode()
    ),
    values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
)
headers = st.dictionaries(
    st.sampled_from(["X-Correlation-ID", "Content-Type"]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300),
    max_size=2,
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(["/internal/v1/pipelines/define", "/internal/v1/phases/complete"]),
    body=bodies,
    header=headers,
)
async def test_any_body_to_a_post_route_is_answered_below_500(
    make_app: AppFactory, path: str, body: bytes, header: dict[str, str]
) -> None:
    app = make_app()
    async with app.test_app():
        response = await app.test_client().post(path, data=body, headers=header)
    assert response.status_code < 500, (response.status_code, await response.get_data())


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(segment=hostile_text.filter(lambda t: "/" not in t and "?" not in t and "#" not in t))
async def test_any_batch_id_in_the_inspect_path_is_answered_below_500(
    make_app: AppFactory, segment: str
) -> None:
    app = make_app()
    path = "/internal/v1/batches/" + quote(segment.encode("utf-8", "surrogatepass"), safe="")
    async with app.test_app():
        response = await app.test_client().get(path)
    assert response.status_code < 500, (segment[:40], response.status_code)
