from quart.typing import TestClientProtocol as Client


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
