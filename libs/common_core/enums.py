from enum import StrEnum


class BatchPhaseStatus(StrEnum):
    """Batch-level outcome of one processing phase, as the Essay Lifecycle Service reports it."""

    COMPLETED_SUCCESSFULLY = "COMPLETED_SUCCESSFULLY"
    COMPLETED_WITH_FAILURES = "COMPLETED_WITH_FAILURES"
    FAILED_CRITICALLY = "FAILED_CRITICALLY"

    @classmethod
    def parse(cls, raw: str) -> "BatchPhaseStatus":
        # Producers disagree on case (the seed-era ELS writes upper case, the current one
        # lower case); the contract says compare case-insensitively.
        return cls(raw.strip().upper())


class BatchStatus(StrEnum):
    """The current platform's batch status values, which its ELS phase outcome carries."""

    AWAITING_CONTENT_VALIDATION = "awaiting_content_validation"
    CONTENT_INGESTION_FAILED = "content_ingestion_failed"
    AWAITING_PIPELINE_CONFIGURATION = "awaiting_pipeline_configuration"
    READY_FOR_PIPELINE_EXECUTION = "ready_for_pipeline_execution"
    PROCESSING_PIPELINES = "processing_pipelines"
    AWAITING_STUDENT_VALIDATION = "awaiting_student_validation"
    STUDENT_VALIDATION_COMPLETED = "student_validation_completed"
    VALIDATION_TIMEOUT_PROCESSED = "validation_timeout_processed"
    COMPLETED_SUCCESSFULLY = "completed_successfully"
    COMPLETED_WITH_FAILURES = "completed_with_failures"
    FAILED_CRITICALLY = "failed_critically"
    CANCELLED = "cancelled"

    @classmethod
    def parse(cls, raw: str) -> "BatchStatus":
        return cls(raw.strip().lower())

    @property
    def phase_status(self) -> BatchPhaseStatus | None:
        """What this status says about the phase: None while the batch is still under way."""
        return _PHASE_STATUS.get(self)


# A cancelled batch or one whose content never arrived did not finish the phase; the other
# values describe a batch still on its way, which says nothing terminal about a phase.
_PHASE_STATUS: dict[BatchStatus, BatchPhaseStatus] = {
    BatchStatus.COMPLETED_SUCCESSFULLY: BatchPhaseStatus.COMPLETED_SUCCESSFULLY,
    BatchStatus.COMPLETED_WITH_FAILURES: BatchPhaseStatus.COMPLETED_WITH_FAILURES,
    BatchStatus.FAILED_CRITICALLY: BatchPhaseStatus.FAILED_CRITICALLY,
    BatchStatus.CANCELLED: BatchPhaseStatus.FAILED_CRITICALLY,
    BatchStatus.CONTENT_INGESTION_FAILED: BatchPhaseStatus.FAILED_CRITICALLY,
}


class EssayStatus(StrEnum):
    """The per-essay status strings BCS acts on; producers send others, which are not terminal."""

    SPELLCHECKED_SUCCESS = "spellchecked_success"
    SPELLCHECK_FAILED = "spellcheck_failed"


class ProcessingStatus(StrEnum):
    """Status of the current platform's thin spellcheck event; only two values are terminal."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
