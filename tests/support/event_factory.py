"""Builds event envelopes shaped exactly like the platform's examples (docs/events.md), for any
layer's tests."""

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from common_core.topics import Topic


def envelope(
    event_type: str,
    data: dict[str, Any],
    *,
    event_id: str | None = None,
    timestamp: str = "2025-06-21T12:00:00.123456Z",
    correlation_id: str | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "event_timestamp": timestamp,
        "source_service": "test_producer",
        "schema_version": 1,
        "correlation_id": correlation_id,
        "data_schema_uri": None,
        "data": data,
    }


def encode(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document)


def entity(entity_id: str, entity_type: str, parent_id: str | None) -> dict[str, Any]:
    return {"entity_id": entity_id, "entity_type": entity_type, "parent_id": parent_id}


def system_metadata(entity_ref: dict[str, Any]) -> dict[str, Any]:
    return {
        "entity": entity_ref,
        "timestamp": datetime.now(UTC).isoformat(),
        "processing_stage": None,
        "started_at": None,
        "completed_at": None,
        "event": None,
        "error_info": {},
    }


def registered(batch_id: str, essay_ids: list[str], **kw: Any) -> dict[str, Any]:
    data = {
        "event": "batch.essays.registered",
        "batch_id": batch_id,
        "expected_essay_count": len(essay_ids),
        "essay_ids": essay_ids,
        "metadata": system_metadata(entity(batch_id, "batch", None)),
    }
    return envelope(Topic.BATCH_ESSAYS_REGISTERED, data, **kw)


def ready(batch_id: str, essay_ids: list[str], **kw: Any) -> dict[str, Any]:
    data = {
        "event": "batch.essays.ready",
        "batch_id": batch_id,
        "ready_essays": [{"essay_id": e, "text_storage_id": f"s-{e}"} for e in essay_ids],
        "batch_entity": entity(batch_id, "batch", None),
        "metadata": system_metadata(entity(batch_id, "batch", None)),
        "validation_failures": None,
        "total_files_processed": len(essay_ids),
    }
    return envelope(Topic.BATCH_ESSAYS_READY, data, **kw)


def spellcheck(
    batch_id: str | None,
    essay_id: str,
    status: str = "spellchecked_success",
    *,
    metadata_parent: str | None = None,
    **kw: Any,
) -> dict[str, Any]:
    data = {
        "event_name": "essay.spellcheck.completed",
        "entity_ref": entity(essay_id, "essay", batch_id),
        "timestamp": "2025-06-21T12:00:00Z",
        "status": status,
        "system_metadata": system_metadata(entity(essay_id, "essay", metadata_parent)),
        "original_text_storage_id": f"orig-{essay_id}",
        "storage_metadata": {"references": {"corrected_text": {"storage_id": "x", "path": ""}}},
        "corrections_made": 3,
    }
    return envelope(Topic.SPELLCHECK_COMPLETED, data, **kw)


def cj_completed(batch_id: str, essay_ids: list[str], **kw: Any) -> dict[str, Any]:
    data = {
        "event_name": "cj_assessment.completed",
        "entity_ref": entity(batch_id, "batch", None),
        "status": "completed_successfully",
        "system_metadata": system_metadata(entity(batch_id, "batch", None)),
        "cj_assessment_job_id": "job-1",
        "rankings": [
            {"els_essay_id": e, "rank": i + 1, "score": 1.0 / (i + 1)}
            for i, e in enumerate(essay_ids)
        ],
    }
    return envelope(Topic.CJ_ASSESSMENT_COMPLETED, data, **kw)


def cj_failed(batch_id: str, **kw: Any) -> dict[str, Any]:
    meta = system_metadata(entity(batch_id, "batch", None))
    meta["error_info"] = {"error": "llm provider unavailable"}
    data = {
        "event_name": "cj_assessment.failed",
        "entity_ref": entity(batch_id, "batch", None),
        "status": "failed_critically",
        "system_metadata": meta,
        "cj_assessment_job_id": "job-1",
    }
    return envelope(Topic.CJ_ASSESSMENT_FAILED, data, **kw)


def phase_outcome(
    batch_id: str,
    phase_name: str,
    phase_status: str,
    processed: list[str],
    failed: list[str] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    data = {
        "batch_id": batch_id,
        "phase_name": phase_name,
        "phase_status": phase_status,
        "processed_essays": [{"essay_id": e, "text_storage_id": f"s-{e}"} for e in processed],
        "failed_essay_ids": list(failed or []),
        "correlation_id": None,
    }
    return envelope(Topic.BATCH_PHASE_OUTCOME, data, **kw)
