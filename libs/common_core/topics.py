from enum import StrEnum


class Topic(StrEnum):
    SPELLCHECK_COMPLETED = "huleedu.essay.spellcheck.completed.v1"
    CJ_ASSESSMENT_COMPLETED = "huleedu.cj_assessment.completed.v1"
    CJ_ASSESSMENT_FAILED = "huleedu.cj_assessment.failed.v1"
    BATCH_PHASE_OUTCOME = "huleedu.els.batch_phase.outcome.v1"
    BATCH_ESSAYS_REGISTERED = "huleedu.batch.essays.registered.v1"
    BATCH_ESSAYS_READY = "huleedu.els.batch.essays.ready.v1"
    PIPELINE_RESOLUTION = "huleedu.bcs.pipeline.resolution.v1"


DLQ_SUFFIX = ".DLQ"


def dlq_topic(topic: str) -> str:
    return f"{topic}{DLQ_SUFFIX}"
