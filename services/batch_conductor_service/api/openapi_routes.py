"""Serves the OpenAPI 3 description of the HTTP API, built from the same Pydantic models."""

from functools import cache
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema
from quart import Blueprint, Response

from batch_conductor_service.api.models import (
    BatchInspectionResponse,
    ErrorResponse,
    PhaseCompleteRequest,
    PhaseCompleteResponse,
    PipelineDefineRequest,
    PipelineDefineResponse,
)
from batch_conductor_service.api.responses import json_response

openapi_bp = Blueprint("openapi", __name__)

_REF = "#/components/schemas/{model}"


class OpenApi30Schema(GenerateJsonSchema):
    """Pydantic writes JSON Schema 2020-12, where an optional value is `anyOf [X, {"type":
    "null"}]`; OpenAPI 3.0's schemas have no null type and say `nullable: true` instead, which
    admits null only beside a `type` in the same schema."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        inner = self.generate_inner(schema["schema"])
        if "type" in inner:
            return {**inner, "nullable": True}
        # A reference (whose siblings 3.0 ignores) or a union: null as an alternative of its own.
        return {"anyOf": [inner, {"type": "object", "nullable": True, "enum": [None]}]}


def _json_body(schema_name: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=schema_name)}}},
    }


def _error(description: str) -> dict[str, Any]:
    return _json_body("ErrorResponse", description)


@cache
def openapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (
        PipelineDefineRequest,
        PipelineDefineResponse,
        BatchInspectionResponse,
        PhaseCompleteRequest,
        PhaseCompleteResponse,
        ErrorResponse,
    ):
        schema = model.model_json_schema(ref_template=_REF, schema_generator=OpenApi30Schema)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    health_schema = {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded", "unhealthy"]},
            "checks": {"type": "object", "additionalProperties": {"type": "object"}},
        },
    }
    schemas["Health"] = health_schema
    correlation_header = {
        "X-Correlation-ID": {
            "description": "The request's correlation id (from the body, the header, or new).",
            "schema": {"type": "string"},
        }
    }
    trace_header = {
        "X-Trace-Id": {
            "description": "With tracing on (docs/tracing.md): the request's trace id, 32 hex "
            "digits (the caller's when it sent a valid traceparent). Absent with tracing off.",
            "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        }
    }
    trace_parameters = [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": description,
            "schema": {"type": "string"},
        }
        for name, description in (
            ("traceparent", "W3C trace context to continue; one that is not valid is ignored."),
            ("tracestate", "W3C vendor trace state, kept with a valid traceparent."),
        )
    ]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Batch Conductor Service",
            "version": "1.0.0",
            "description": "Tells the Batch Orchestrator which processing steps a batch "
            "still needs, dependencies first, completed steps pruned.",
        },
        "paths": {
            "/internal/v1/pipelines/define": {
                "post": {
                    "summary": "Resolve the steps a batch still needs for a pipeline or step",
                    "operationId": "definePipeline",
                    "parameters": [
                        {
                            "name": "X-Correlation-ID",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                        *trace_parameters,
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": _REF.format(model="PipelineDefineRequest")}
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            **_json_body("PipelineDefineResponse", "The steps still to run."),
                            "headers": {**correlation_header, **trace_header},
                        },
                        "400": {
                            **_error("Not JSON, not an object, invalid fields, or unknown name."),
                            "headers": {**correlation_header, **trace_header},
                        },
                        "413": {
                            **_error("Body larger than BCS_MAX_REQUEST_BYTES."),
                            "headers": {**correlation_header, **trace_header},
                        },
                        "500": {
                            **_error("A bug; never carries a stack trace."),
                            "headers": {**correlation_header, **trace_header},
                        },
                        "503": {
                            **_error("Batch state cannot be read now."),
                            "headers": {
                                "Retry-After": {
                                    "description": "Seconds to wait before retrying.",
                                    "schema": {"type": "integer"},
                                },
                                **correlation_header,
                                **trace_header,
                            },
                        },
                    },
                }
            },
            "/internal/v1/phases/complete": {
                "post": {
                    "summary": "Record a batch-level outcome of one step, as BOS reports it: "
                    "success completes the step, failure leaves it not complete",
                    "operationId": "completePhase",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": _REF.format(model="PhaseCompleteRequest")}
                            }
                        },
                    },
                    "responses": {
                        "200": _json_body(
                            "PhaseCompleteResponse", "Recorded; a step's latest report decides."
                        ),
                        "400": _error("Not JSON, not an object, invalid fields, unknown phase."),
                        "401": _error("BCS_INTERNAL_API_KEY is set and the key is wrong."),
                        "503": _error("Batch state cannot be written now."),
                    },
                }
            },
            "/internal/v1/batches/{batch_id}": {
                "get": {
                    "summary": "What BCS knows of a batch: roster, each step's outcomes and "
                    "whether /define would prune it, and the last event applied",
                    "operationId": "inspectBatch",
                    "parameters": [
                        {
                            "name": "batch_id",
                            "in": "path",
                            "required": True,
                            "description": "May hold '/', sent as it is or as %2F.",
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        }
                    ],
                    "responses": {
                        "200": _json_body("BatchInspectionResponse", "The batch's state."),
                        "400": _error(
                            "Not an id BCS accepts (over 255 characters, or control characters)."
                        ),
                        "404": _error("BCS holds no state for the batch."),
                        "503": _error("Batch state cannot be read now."),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Health of the service and each dependency",
                    "operationId": "health",
                    "responses": {
                        "200": _json_body("Health", "ok or degraded"),
                        "503": _json_body("Health", "unhealthy"),
                    },
                }
            },
            "/livez": {
                "get": {
                    "summary": "Liveness: the process answers; no dependency outage fails it",
                    "operationId": "liveness",
                    "responses": {
                        "200": _json_body("Health", "ok"),
                        "503": _json_body("Health", "the Kafka consumer task died; restart"),
                    },
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: /define can be answered (the batch state can be read)",
                    "operationId": "readiness",
                    "responses": {
                        "200": _json_body("Health", "ok or degraded"),
                        "503": _json_body("Health", "no state store can be read"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": {"description": "OpenAPI 3 document."}},
                }
            },
            "/docs": {
                "get": {
                    "summary": "This document rendered for reading and trying out (Swagger UI)",
                    "operationId": "docs",
                    "responses": {
                        "200": {
                            "description": "An HTML page; its script and style come from BCS.",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": schemas,
            # Required on every /internal/ route only when BCS_INTERNAL_API_KEY is set.
            "securitySchemes": {
                "InternalApiKey": {"type": "apiKey", "in": "header", "name": "X-Internal-API-Key"}
            },
        },
    }


@openapi_bp.get("/openapi.json")
async def openapi() -> Response:
    return json_response(200, openapi_document())
