from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import OpenAPIV30SpecValidator
from pydantic import BaseModel
from quart.typing import TestClientProtocol as Client

from batch_conductor_service.api.models import (
    BatchInspectionResponse,
    ErrorResponse,
    PhaseCompleteResponse,
    PipelineDefineResponse,
)
from batch_conductor_service.api.openapi_routes import openapi_document


async def test_openapi_document_describes_every_endpoint(client: Client) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = await response.get_json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/internal/v1/pipelines/define",
        "/internal/v1/phases/complete",
        "/internal/v1/batches/{batch_id}",
        "/healthz",
        "/livez",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
    }
    define = document["paths"]["/internal/v1/pipelines/define"]["post"]
    assert set(define["responses"]) == {"200", "400", "413", "500", "503"}
    complete = document["paths"]["/internal/v1/phases/complete"]["post"]
    assert set(complete["responses"]) == {"200", "400", "401", "503"}
    assert "PhaseCompleteRequest" in document["components"]["schemas"]
    inspect = document["paths"]["/internal/v1/batches/{batch_id}"]["get"]
    assert set(inspect["responses"]) == {"200", "400", "404", "503"}


async def test_openapi_schemas_match_the_contract_fields(client: Client) -> None:
    schemas = (await (await client.get("/openapi.json")).get_json())["components"]["schemas"]
    request = schemas["PipelineDefineRequest"]
    assert set(request["required"]) == {"batch_id", "requested_pipeline"}
    assert request["properties"]["batch_id"]["maxLength"] == 255
    response = schemas["PipelineDefineResponse"]
    assert {"batch_id", "final_pipeline", "analysis_summary"} <= set(response["required"])
    assert set(schemas["ErrorResponse"]["properties"]) == {"error", "detail"}
    inspection = schemas["BatchInspectionResponse"]
    assert set(inspection["required"]) == {"batch_id", "roster", "steps", "last_event_at"}


async def test_every_reference_in_the_document_resolves(client: Client) -> None:
    document = await (await client.get("/openapi.json")).get_json()
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    refs.append(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(document)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in document["components"]["schemas"]


async def test_the_document_is_valid_openapi_3_0_3(client: Client) -> None:
    document = await (await client.get("/openapi.json")).get_json()
    assert document["openapi"] == "3.0.3"
    errors = [error.message for error in OpenAPIV30SpecValidator(document).iter_errors()]
    assert errors == []


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The document's schema of `model`, its references resolving within the document."""
    document = openapi_document()
    return {"$ref": f"#/components/schemas/{model.__name__}", **document}


@given(
    body=st.one_of(
        st.builds(BatchInspectionResponse),
        st.builds(PipelineDefineResponse),
        st.builds(PhaseCompleteResponse),
        st.builds(ErrorResponse),
    )
)
def test_every_body_the_models_serve_matches_its_schema_null_included(body: BaseModel) -> None:
    # OpenAPI 3.0's own reading of a schema: null is valid only where the schema is nullable.
    validator = OAS30Validator(schema_of(type(body)))
    errors = [error.message for error in validator.iter_errors(body.model_dump(mode="json"))]
    assert errors == []


def test_null_is_refused_where_a_field_is_not_optional() -> None:
    body = BatchInspectionResponse(batch_id="b", roster=None, steps=[], last_event_at=None)
    document = body.model_dump(mode="json")
    assert OAS30Validator(schema_of(BatchInspectionResponse)).is_valid(document)
    assert not OAS30Validator(schema_of(BatchInspectionResponse)).is_valid(
        {**document, "steps": None}
    )
