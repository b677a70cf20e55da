"""The scheduler API's request and response bodies (Pydantic), validated before any I/O.

What a schema can say is said here: a job's type is a short name (it is also a metric
label), its priority 0..9, its time either an RFC 3339 instant with an offset
(`run_at`) or a delay (`delay_ms`), never both. What depends on configuration (the
attempt cap, the bulk limit) is checked by the routes, still before anything is
enqueued, and answered as the same 422 problem+json.
"""

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from scheduler.dlq import Selection
from scheduler.domain import DEFAULT_MAX_ATTEMPTS, MAX_PRIORITY, MIN_PRIORITY

MAX_DELAY_MS = 366 * 24 * 3_600_000
"""A year: a longer delay is almost surely a unit mistake (seconds sent as ms)."""
MAX_BULK_SCHEMA = 10_000
"""The schema's ceiling on a bulk request; the configured bulk limit is usually lower."""
MAX_IDS = 1_000

JobType = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", examples=["email"])
]
JobId = Annotated[str, Field(min_length=1, max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobIn(_Strict):
    """A job to enqueue: due now, at `run_at`, or after `delay_ms` (Redis time)."""

    type: JobType
    payload: dict[str, Any] = Field(default_factory=dict)
    run_at: AwareDatetime | None = Field(default=None, examples=["2030-01-01T09:00:00Z"])
    delay_ms: int | None = Field(default=None, ge=0, le=MAX_DELAY_MS)
    priority: int = Field(default=MIN_PRIORITY, ge=MIN_PRIORITY, le=MAX_PRIORITY)
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1)
    dedupe_key: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_time_at_most(self) -> Self:
        if self.run_at is not None and self.delay_ms is not None:
            raise ValueError("give run_at or delay_ms, not both")
        return self


class BulkIn(_Strict):
    """Jobs enqueued together; the whole request is validated before any is enqueued."""

    jobs: list[JobIn] = Field(min_length=1, max_length=MAX_BULK_SCHEMA)


class Enqueued(BaseModel):
    """The job's id; `deduplicated` when its dedupe key returned an earlier job."""

    id: str
    deduplicated: bool = False


class BulkEnqueued(BaseModel):
    """One result per job, in request order."""

    jobs: list[Enqueued]


class HistoryOut(BaseModel):
    """One audit event."""

    model_config = ConfigDict(from_attributes=True)

    event: str
    attempt: int
    error: str | None
    at: datetime


class JobOut(BaseModel):
    """A job's state, attempts and history; `source` is `redis` (live) or `postgres`."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    type: str
    payload: dict[str, Any]
    state: str
    attempts: int
    max_attempts: int
    priority: int
    run_at: datetime | None
    error: str | None
    source: str
    history: list[HistoryOut]


class DeadOut(BaseModel):
    """One dead job."""

    model_config = ConfigDict(from_attributes=True)

    job_id: str
    type: str
    payload: dict[str, Any]
    attempts: int
    error: str
    died_at: datetime


class DeadPage(BaseModel):
    """Dead jobs, newest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[DeadOut]
    next_cursor: str | None


class DeadDetailOut(DeadOut):
    """A dead job with its audit history."""

    history: list[HistoryOut]


class DeadSelector(_Strict):
    """Dead jobs by `ids`, or by `type` and/or `older_than` (purge); never all by default."""

    ids: list[JobId] | None = Field(default=None, min_length=1, max_length=MAX_IDS)
    type: JobType | None = None
    older_than: AwareDatetime | None = None

    @model_validator(mode="after")
    def _ids_or_filter(self) -> Self:
        self.selection()
        return self

    def selection(self) -> Selection:
        """Return the DLQ selection (`ValueError` if empty or mixed)."""
        return Selection(tuple(self.ids or ()), self.type, self.older_than)


class Requeued(BaseModel):
    """How many dead jobs went back to the queue."""

    requeued: int


class Purged(BaseModel):
    """How many dead jobs were deleted."""

    purged: int


class BreakerIn(_Strict):
    """When a lane's breaker opens and how it probes (see `scheduler.domain.BreakerPolicy`)."""

    ratio: float = Field(default=0.5, gt=0, le=1)
    min_calls: int = Field(default=10, ge=1)
    window_ms: int = Field(default=10_000, ge=1)
    cooldown_ms: int = Field(default=5_000, ge=1)
    probes: int = Field(default=1, ge=1)


class PolicyIn(_Strict):
    """Limits for every lane of a job type; a field left out is no limit of that kind."""

    concurrency: int | None = Field(default=None, ge=1)
    rate: float | None = Field(default=None, gt=0, description="Jobs started per second.")
    burst: int | None = Field(default=None, ge=1)
    breaker: BreakerIn | None = None

    @model_validator(mode="after")
    def _burst_needs_a_rate(self) -> Self:
        if self.burst is not None and self.rate is None:
            raise ValueError("burst needs a rate")
        return self


class LaneOut(BaseModel):
    """A lane's breaker, and its jobs running and parked (held back) now."""

    lane: str
    breaker: str
    calls: int
    failures: int
    open_until: datetime | None
    running: int
    parked: int


class LanesOut(BaseModel):
    """Every lane with a breaker, a running job or a parked job; the policies by type."""

    lanes: list[LaneOut]
    policies: dict[str, PolicyIn]
