"""Cron schedules: what to enqueue, and when, as pure functions of UTC time.

Pattern: a value object (`Schedule`) around a maintained cron evaluator (`cronsim`,
Debian cron semantics, plus an optional leading seconds field), with no I/O; the runner
(`scheduler.cron.runner`) and the queue build on it. Guarantee: a tick is identified by
its scheduled instant in epoch milliseconds, computed in UTC (no DST, so no skipped or
repeated local hours), never by when a process woke up, so every process that
evaluates a schedule names the same ticks; the job of a tick has the deterministic id
`cron:<name>:<tick>`. Failure it handles: a malformed expression, name or payload is
refused with a `ValueError` that says what is wrong, at construction, not in Redis.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cronsim import CronSim, CronSimError

from scheduler.domain import DEFAULT_MAX_ATTEMPTS, MAX_PRIORITY, MIN_PRIORITY, Job

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
"""Names go into Redis keys and job ids: no separators, braces or spaces."""
_SPEC_SEPARATOR = "|"
_SPEC_FIELDS = ("name", "expression", "job type", "payload", "priority", "max attempts")
_REQUIRED_SPEC_FIELDS = 3


@dataclass(frozen=True)
class Schedule:
    """Enqueue a `job_type` job with `payload` at every tick of the cron `expression` (UTC).

    `expression` has five fields (minute hour day-of-month month day-of-week), or six
    with a leading seconds field (`*/10 * * * * *`: every ten seconds).
    """

    name: str
    expression: str
    job_type: str
    payload: dict[str, Any] = field(default_factory=dict)
    priority: int = MIN_PRIORITY
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def __post_init__(self) -> None:
        """Refuse a schedule that could not name its ticks or build its jobs."""
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"schedule name {self.name!r}: use letters, digits, '_', '.', '-'")
        if not self.job_type:
            raise ValueError(f"schedule {self.name!r}: the job type is empty")
        if not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise ValueError(f"schedule {self.name!r}: priority must be 0..9")
        if self.max_attempts < 1:
            raise ValueError(f"schedule {self.name!r}: max_attempts must be at least 1")
        self._cron(datetime.fromtimestamp(0, UTC))

    @property
    def fence(self) -> str:
        """Return the name of the fence that holds this schedule's last fired tick."""
        return f"cron:{self.name}"

    def job_id(self, tick_ms: int) -> str:
        """Return the id of the job of `tick_ms`: the same in every process."""
        return f"cron:{self.name}:{tick_ms}"

    def job(self, tick_ms: int) -> Job:
        """Return the job this schedule enqueues for `tick_ms`, due at the tick."""
        return Job(
            id=self.job_id(tick_ms),
            type=self.job_type,
            payload=self.payload,
            priority=self.priority,
            max_attempts=self.max_attempts,
            run_at_ms=tick_ms,
        )

    def next_tick_ms(self, after_ms: int) -> int | None:
        """Return the first tick strictly after `after_ms`; None if none in 50 years."""
        return _first(self._cron(_utc(after_ms)))

    def latest_tick_ms(self, now_ms: int) -> int | None:
        """Return the last tick at or before `now_ms`; None if none in 50 years."""
        # cronsim's reverse iteration yields the whole second of a start that has a
        # fraction, so starting 1 ms after `now_ms` includes a tick exactly at it.
        return _first(self._cron(_utc(now_ms + 1), reverse=True))

    def _cron(self, start: datetime, *, reverse: bool = False) -> CronSim:
        try:
            return CronSim(self.expression, start, reverse=reverse)
        except CronSimError as error:
            raise ValueError(
                f"schedule {self.name!r}: invalid cron expression {self.expression!r}: {error}"
            ) from None


def parse_spec(spec: str) -> Schedule:
    """Parse `name|expression|job type[|payload JSON[|priority[|max attempts]]]`.

    For example `report|0 6 * * MON|noop|{"to": "ops"}|5`.
    """
    parts = [part.strip() for part in spec.split(_SPEC_SEPARATOR)]
    if not _REQUIRED_SPEC_FIELDS <= len(parts) <= len(_SPEC_FIELDS):
        raise ValueError(f"schedule {spec!r}: expected {'|'.join(_SPEC_FIELDS)} (3 to 6 fields)")
    name, expression, job_type, *optional = parts
    payload, priority, max_attempts = [*optional, "", "", ""][:3]
    return Schedule(
        name=name,
        expression=expression,
        job_type=job_type,
        payload=_payload(name, payload),
        priority=_integer(name, "priority", priority, MIN_PRIORITY),
        max_attempts=_integer(name, "max attempts", max_attempts, DEFAULT_MAX_ATTEMPTS),
    )


def _payload(name: str, text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"schedule {name!r}: payload is not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise ValueError(f"schedule {name!r}: payload must be a JSON object")  # noqa: TRY004 - bad text, like bad JSON
    return payload


def _integer(name: str, what: str, text: str, default: int) -> int:
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"schedule {name!r}: {what} {text!r} is not an integer") from None


def _utc(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def _first(ticks: CronSim) -> int | None:
    """Return the iterator's next tick in epoch ms (ticks are whole seconds, so exact)."""
    tick = next(ticks, None)
    return None if tick is None else int(tick.timestamp()) * 1000
