"""The scheduler's vocabulary: job states, jobs, the retry policy and the attempt cap.

Pattern: pure value objects and functions, no I/O; the Redis adapter
(`scheduler.queue`) and the worker (`scheduler.worker`) build on them. Guarantee: a
retry waits a full-jitter exponential backoff, `uniform(0, min(cap, base * 2**(n-1)))`
after attempt n, drawn from an injected `random.Random` so tests are reproducible; a
job that has used `max_attempts` attempts is never delivered again (it is dead).
Failure it handles: invalid jobs and policies (negative delays, a priority out of
range, zero attempts) are refused with a `ValueError` at construction, not in Redis;
a handler marks a failure that no retry can fix with `PermanentJobError`.
"""

import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MIN_PRIORITY = 0
MAX_PRIORITY = 9
"""Higher runs first among due jobs; the ready set folds the priority into its score."""
DEFAULT_MAX_ATTEMPTS = 5


class JobState(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    """Due, in the ready set, waiting for a worker."""
    SCHEDULED = "scheduled"
    """Waiting for its run time."""
    RUNNING = "running"
    """Leased to a worker."""
    RETRYING = "retrying"
    """Failed (or its worker died); waiting for its backoff to run again."""
    SUCCEEDED = "succeeded"
    """Acknowledged; its data is gone from Redis."""
    DEAD = "dead"
    """Out of attempts; handed to the dead-letter sink, gone from Redis."""


@dataclass(frozen=True)
class Job:
    """A unit of work. `attempts` counts deliveries so far and is the lease's fencing token."""

    id: str
    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    priority: int = MIN_PRIORITY
    attempts: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    run_at_ms: int | None = None
    """When it may run, in Redis server milliseconds; None means now."""

    def __post_init__(self) -> None:
        """Refuse jobs that Redis could not order or that could never run."""
        if not self.id or not self.type:
            raise ValueError("a job needs an id and a type")
        if not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise ValueError(f"priority must be {MIN_PRIORITY}..{MAX_PRIORITY}")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.attempts < 0:
            raise ValueError("attempts cannot be negative")

    @property
    def exhausted(self) -> bool:
        """Return whether a failure of the current attempt makes the job dead."""
        return is_exhausted(self.attempts, self.max_attempts)


def is_exhausted(attempts: int, max_attempts: int) -> bool:
    """Return whether another attempt would exceed the cap (attempt `max + 1` never runs)."""
    return attempts >= max_attempts


class PermanentJobError(Exception):
    """A failure that retrying cannot fix: the job should go to the dead-letter queue now.

    Handlers raise a subclass (an invalid payload, a webhook the receiver refused with a
    4xx) so that the worker skips the remaining attempts instead of repeating a request
    that can only fail the same way.
    """


@dataclass(frozen=True)
class DeadJob:
    """A job out of attempts, with the error of its last one."""

    job: Job
    error: str


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped (the AWS "full jitter" scheme)."""

    base_ms: int = 1_000
    cap_ms: int = 60_000

    def __post_init__(self) -> None:
        """Refuse negative delays and a cap below the base."""
        if self.base_ms < 0 or self.cap_ms < self.base_ms:
            raise ValueError("need 0 <= base_ms <= cap_ms")

    def ceiling_ms(self, attempt: int) -> int:
        """Return the longest delay after failed attempt `attempt` (1-based)."""
        if attempt < 1:
            raise ValueError("attempts are counted from 1")
        if self.base_ms == 0:
            return 0
        # Compare exponents first, so a large attempt never builds a huge integer.
        if attempt - 1 >= self.cap_ms.bit_length():
            return self.cap_ms
        return int(min(self.cap_ms, self.base_ms * 2 ** (attempt - 1)))

    def delay_ms(self, attempt: int, rng: random.Random) -> int:
        """Return a delay drawn uniformly from [0, ceiling_ms(attempt)]."""
        return round(rng.uniform(0, self.ceiling_ms(attempt)))
