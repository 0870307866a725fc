from enum import StrEnum


class Topic(StrEnum):
    SPELLCHECK_COMPLETED = "huleedu.essay.spellcheck.completed.v1"
    CJ_ASSESSMENT_COMPLETED = "huleedu.cj_assessment.completed.v1"
    CJ_ASSESSMENT_FAILED = "huleedu.cj_assessment.failed.v1"
    BATCH_PHASE_OUTCOME = "huleedu.els.batch_phase.outcome.v1"
    BATCH_ESSAYS_REGISTERED = "huleedu.batch.essays.registered.v1"
    BATCH_ESSAYS_READY = "huleedu.els.batch.essays.ready.v1"
    PIPELINE_RESOLUTION = "huleedu.bcs.pipeline.resolution.v1"


class CurrentTopic(StrEnum):
    """Topics only the current platform (fixtures/huleedu/TOPICS.md, commit 52468214) uses."""

    # The thin per-essay spellcheck event.
    SPELLCHECK_PHASE_COMPLETED = "huleedu.batch.spellcheck.phase.completed.v1"
    # Where the current ELS publishes the batch phase outcome (seed era: `batch_phase`).
    BATCH_PHASE_OUTCOME = "huleedu.els.batch.phase.outcome.v1"


DLQ_SUFFIX = ".DLQ"


def dlq_topic(topic: str) -> str:
    return f"{topic}{DLQ_SUFFIX}"
