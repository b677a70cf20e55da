"""The scheduler's vocabulary: job states, jobs, the retry policy and the attempt cap.

Pattern: pure value objects and functions, no I/O; the Redis adapter
(`scheduler.queue`) and the worker (`scheduler.worker`) build on them. Guarantee: a
retry waits a full-jitter exponential backoff, `uniform(0, min(cap, base * 2**(n-1)))`
after attempt n, drawn from an injected `random.Random` so tests are reproducible; a
job that has used `max_attempts` attempts is never delivered again (it is dead).
Lanes: circuit breakers and limits key on a job's lane — its type, or `type@host`
for a job whose payload has a `url`, so one failing webhook host halts only its own
jobs. A `LanePolicy` (per type, applied to each of its lanes) sets a concurrency cap,
a rate, and a `BreakerPolicy`.
Failure it handles: invalid jobs and policies (negative delays, a priority out of
range, zero attempts) are refused with a `ValueError` at construction, not in Redis;
a handler marks a failure that no retry can fix with `PermanentJobError`.
"""

import json
import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

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


class RetryLaterError(Exception):
    """A failure the downstream says when to retry (`Retry-After`): not before `after_ms`.

    The worker waits the longer of its own backoff and `after_ms`, bounded by
    `MAX_RETRY_AFTER_MS`, so a downstream asking for a pause gets it, but a bogus
    header cannot park a job for a day.
    """

    def __init__(self, message: str, *, after_ms: int | None) -> None:
        """Describe the failure; `after_ms` is the downstream's wait, if it gave one."""
        super().__init__(message)
        self.after_ms = after_ms


MAX_RETRY_AFTER_MS = 3_600_000


def retry_delay_ms(backoff_ms: int, error: BaseException) -> int:
    """Return when to retry after `error`: the backoff, or longer if the downstream asked."""
    if isinstance(error, RetryLaterError) and error.after_ms is not None:
        return max(backoff_ms, min(error.after_ms, MAX_RETRY_AFTER_MS))
    return backoff_ms


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


class BreakerState(StrEnum):
    """A lane's circuit breaker, as the queue scripts keep it in Redis."""

    CLOSED = "closed"
    """Jobs flow; calls and failures are counted per window."""
    OPEN = "open"
    """Too many failures: the lane's jobs are held back (no attempt used) until cooldown."""
    HALF_OPEN = "half_open"
    """Cooled down: up to `probes` jobs run; their successes close it, a failure reopens it."""


@dataclass(frozen=True)
class BreakerPolicy:
    """When a lane's breaker opens, how long it stays open, and how it probes."""

    ratio: float = 0.5
    """Open when failures / calls reaches this within one window..."""
    min_calls: int = 10
    """...and at least this many calls ended in it (a few failures are not an outage)."""
    window_ms: int = 10_000
    cooldown_ms: int = 5_000
    """How long it stays open before letting probes through."""
    probes: int = 1
    """Jobs let through while half-open; this many successes close it."""

    def __post_init__(self) -> None:
        """Refuse a policy that could never open or never close."""
        if not 0 < self.ratio <= 1:
            raise ValueError("ratio must be in (0, 1]")
        if min(self.min_calls, self.window_ms, self.cooldown_ms, self.probes) < 1:
            raise ValueError("min_calls, window_ms, cooldown_ms and probes must be positive")


@dataclass(frozen=True)
class LanePolicy:
    """Limits for each lane of a job type; None means no limit of that kind."""

    concurrency: int | None = None
    """Jobs of the lane running at once, across every worker."""
    rate: float | None = None
    """Jobs started per second (a token bucket refilled on Redis time)..."""
    burst: int | None = None
    """...holding this many tokens at most (default: max(1, rate))."""
    breaker: BreakerPolicy | None = None

    def __post_init__(self) -> None:
        """Refuse limits that would hold every job back forever."""
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive")
        if self.burst is not None and (self.rate is None or self.burst < 1):
            raise ValueError("burst needs a rate and must be at least 1")

    def to_json(self) -> str:
        """Return the JSON the queue scripts read, without the limits that are not set."""
        fields: dict[str, Any] = {
            "concurrency": self.concurrency,
            "rate": self.rate,
            "burst": self.burst,
            "breaker": None if self.breaker is None else vars(self.breaker),
        }
        return json.dumps({k: v for k, v in fields.items() if v is not None})

    @classmethod
    def from_json(cls, raw: str | bytes) -> "LanePolicy":
        """Return the policy that `to_json` wrote."""
        fields = json.loads(raw)
        breaker = fields.pop("breaker", None)
        return cls(**fields, breaker=None if breaker is None else BreakerPolicy(**breaker))


DEFAULT_POLICIES = {"webhook": LanePolicy(concurrency=20, breaker=BreakerPolicy())}
"""What a worker sets for types that have no policy yet: each webhook host gets a breaker
and at most 20 calls in flight across the fleet. An operator's own policy is kept."""


def lane_of(job_type: str, payload: dict[str, Any]) -> str:
    """Return the lane breakers and limits key on: `type@host` for a URL payload, else type."""
    url = payload.get("url")
    host = urlsplit(url).hostname if isinstance(url, str) else None
    return f"{job_type}@{host}" if host else job_type
