"""What an event says, whichever generation of its contract it was written in.

A reading is the format-neutral content BCS acts on: a roster, one essay's result of one step,
or a batch's result of one step. The tolerant reader produces them; consumers never look at a
payload's shape again.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from common_core.enums import BatchPhaseStatus


class Generation(StrEnum):
    """Which commit of the platform a payload's shape belongs to (fixtures/huleedu/README.md)."""

    SEED_ERA = "seed-era"
    CURRENT = "current"


class RosterKind(StrEnum):
    REGISTERED = "registered"
    READY = "ready"


@dataclass(frozen=True, slots=True)
class RosterReading:
    batch_id: str
    essay_ids: frozenset[str]
    kind: RosterKind


@dataclass(frozen=True, slots=True)
class EssayResultReading:
    """One essay's result of one step. `batch_id` None: the producer did not say, so the
    batch whose roster holds the essay is the one it belongs to. `succeeded` None: the status
    is not terminal (the event is valid but changes nothing)."""

    essay_id: str
    step: str
    batch_id: str | None
    succeeded: bool | None


@dataclass(frozen=True, slots=True)
class BatchResultReading:
    """A batch's result of one step, with the essays it names. `status` None: the producer's
    status says the phase is still under way, so only the essays' results count."""

    batch_id: str
    step: str
    status: BatchPhaseStatus | None
    succeeded: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


Reading = RosterReading | EssayResultReading | BatchResultReading


@dataclass(frozen=True, slots=True)
class ReadEvent:
    """One consumed event: the envelope facts every consumer needs, and its reading."""

    event_id: str
    occurred_at: datetime
    correlation_id: str | None
    generation: Generation
    reading: Reading
