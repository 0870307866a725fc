from enum import StrEnum


class BatchPhaseStatus(StrEnum):
    """Batch-level outcome of one processing phase, as the Essay Lifecycle Service reports it."""

    COMPLETED_SUCCESSFULLY = "COMPLETED_SUCCESSFULLY"
    COMPLETED_WITH_FAILURES = "COMPLETED_WITH_FAILURES"
    FAILED_CRITICALLY = "FAILED_CRITICALLY"

    @classmethod
    def parse(cls, raw: str) -> "BatchPhaseStatus":
        # Producers disagree on case; the contract says compare case-insensitively.
        return cls(raw.strip().upper())

    @property
    def is_completion(self) -> bool:
        return self is not BatchPhaseStatus.FAILED_CRITICALLY


class EssayStatus(StrEnum):
    """The per-essay status strings BCS acts on; producers send others, which are not terminal."""

    SPELLCHECKED_SUCCESS = "spellchecked_success"
    SPELLCHECK_FAILED = "spellcheck_failed"
