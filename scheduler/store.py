"""The PostgreSQL adapter: a batched audit trail, each job's latest state, and the DLQ.

Pattern: write-behind batching. The worker calls `record()` on its hot path, which only
appends to an in-memory buffer; `flush()` (run every `interval_s` by `run()`, early when
the buffer holds `max_batch` events, and once more on stop) writes the whole buffer in
one transaction: one multi-row `INSERT` of audit rows and one multi-row upsert of job
states (`ON CONFLICT (id) DO UPDATE`, guarded by `updated_at` so an older state never
overwrites a newer one). `bury()` puts a dead job in the buffer and flushes at once, so
its `scheduler_dead` row and its `dead` audit row commit in one transaction.
Guarantee: PostgreSQL sees a few statements per interval, not one per job event; burial
is idempotent (`ON CONFLICT DO NOTHING`, and the `dead` audit row is written only by the
insert that created the DLQ row), so burying a job twice leaves one row of each.
Failure it handles: a flush that fails (PostgreSQL down, a deadlock) puts its events
back at the head of the buffer for the next flush; the buffer is bounded (`max_buffer`;
the oldest audit events are dropped and counted, dead jobs never are). Not handled: a
process that dies with events still buffered loses them (the audit trail is
best-effort; the Redis queue, not this table, is the source of truth for live jobs).
"""

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from labs.clock import Clock
from scheduler.domain import DeadJob, Job, JobState

log = logging.getLogger(__name__)

_SCHEMA_LOCK = 0x5C4ED
"""Advisory lock key: workers starting together must not race `CREATE TABLE IF NOT EXISTS`."""

SCHEMA_DDL = (
    """CREATE TABLE IF NOT EXISTS scheduler_jobs (
        id text PRIMARY KEY,
        type text NOT NULL,
        payload jsonb NOT NULL DEFAULT '{}',
        state text NOT NULL,
        attempts integer NOT NULL,
        max_attempts integer NOT NULL,
        priority integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        last_error text
    )""",
    """CREATE TABLE IF NOT EXISTS scheduler_audit (
        id bigserial PRIMARY KEY,
        job_id text NOT NULL,
        event text NOT NULL CHECK (event IN
            ('enqueued', 'started', 'succeeded', 'failed', 'retried', 'dead', 'requeued')),
        attempt integer NOT NULL,
        error text,
        at timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX IF NOT EXISTS scheduler_audit_job_id ON scheduler_audit (job_id, id)",
    """CREATE TABLE IF NOT EXISTS scheduler_dead (
        job_id text PRIMARY KEY,
        type text NOT NULL,
        payload jsonb NOT NULL DEFAULT '{}',
        attempts integer NOT NULL,
        error text NOT NULL,
        died_at timestamptz NOT NULL DEFAULT now()
    )""",
    # The DLQ is listed newest first (optionally by type) with a (died_at, job_id) cursor.
    "CREATE INDEX IF NOT EXISTS scheduler_dead_died ON scheduler_dead (died_at, job_id)",
    "CREATE INDEX IF NOT EXISTS scheduler_dead_type ON scheduler_dead (type, died_at, job_id)",
)

_metadata = MetaData()
jobs_table = Table(
    "scheduler_jobs",
    _metadata,
    Column("id", Text, primary_key=True),
    Column("type", Text),
    Column("payload", JSONB),
    Column("state", Text),
    Column("attempts", Integer),
    Column("max_attempts", Integer),
    Column("priority", Integer),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
    Column("last_error", Text),
)
audit_table = Table(
    "scheduler_audit",
    _metadata,
    Column("id", BigInteger, primary_key=True),
    Column("job_id", Text),
    Column("event", Text),
    Column("attempt", Integer),
    Column("error", Text),
    Column("at", DateTime(timezone=True)),
)
dead_table = Table(
    "scheduler_dead",
    _metadata,
    Column("job_id", Text, primary_key=True),
    Column("type", Text),
    Column("payload", JSONB),
    Column("attempts", Integer),
    Column("error", Text),
    Column("died_at", DateTime(timezone=True)),
)


class AuditEvent(StrEnum):
    """What happened to a job; each event also sets the job's state in `scheduler_jobs`."""

    ENQUEUED = "enqueued"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRIED = "retried"
    DEAD = "dead"
    REQUEUED = "requeued"


_STATE_AFTER = {
    AuditEvent.ENQUEUED: JobState.QUEUED,
    AuditEvent.STARTED: JobState.RUNNING,
    AuditEvent.SUCCEEDED: JobState.SUCCEEDED,
    AuditEvent.FAILED: JobState.RETRYING,
    AuditEvent.RETRIED: JobState.RETRYING,
    AuditEvent.DEAD: JobState.DEAD,
    AuditEvent.REQUEUED: JobState.QUEUED,
}


@dataclass(frozen=True)
class _Recorded:
    event: AuditEvent
    job: Job
    error: str | None
    at: datetime


async def ensure_schema(engine: AsyncEngine) -> None:
    """Create the scheduler's tables in the connection's schema unless they exist."""
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        for statement in SCHEMA_DDL:
            await conn.execute(text(statement))


class AuditWriter:
    """Buffers job events and writes them to PostgreSQL in batches; buries dead jobs."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock,
        max_batch: int = 1_000,
        max_buffer: int = 100_000,
    ) -> None:
        """Write through `engine`; stamp events with `clock`; flush early at `max_batch`."""
        if not 1 <= max_batch <= max_buffer:
            raise ValueError("need 1 <= max_batch <= max_buffer")
        self._engine = engine
        self._clock = clock
        self._max_batch = max_batch
        self._max_buffer = max_buffer
        self._buffer: deque[_Recorded] = deque()
        self._dead: dict[str, _Recorded] = {}
        self._lock = asyncio.Lock()
        self._full = asyncio.Event()
        self._stop = asyncio.Event()
        self.dropped = 0
        """Audit events dropped because the buffer was full (PostgreSQL down too long)."""
        self.flushes = 0
        """Transactions committed, for tests and metrics."""

    @property
    def pending(self) -> int:
        """Return how many events and dead jobs wait for the next flush."""
        return len(self._buffer) + len(self._dead)

    def record(self, event: AuditEvent, job: Job, error: str | None = None) -> None:
        """Buffer an event of `job` (at its current attempt); no I/O."""
        self._buffer.append(_Recorded(event, job, error, self._now()))
        while len(self._buffer) > self._max_buffer:
            self._buffer.popleft()
            self.dropped += 1
        if len(self._buffer) >= self._max_batch:
            self._full.set()

    async def bury(self, dead: DeadJob) -> None:
        """Write `dead` to `scheduler_dead` with its `dead` audit row, now; idempotent.

        A failed write keeps the job buffered for the next flush instead of raising, so
        the worker loop carries on.
        """
        self._dead[dead.job.id] = _Recorded(AuditEvent.DEAD, dead.job, dead.error, self._now())
        await self.flush_safely()

    async def flush(self) -> int:
        """Write everything buffered in one transaction; return the rows written."""
        async with self._lock:
            events, self._buffer = list(self._buffer), deque()
            dead, self._dead = self._dead, {}
            self._full.clear()
            if not events and not dead:
                return 0
            try:
                async with self._engine.begin() as conn:
                    written = await _write(conn, events, list(dead.values()))
            except BaseException:
                self._buffer.extendleft(reversed(events))
                self._dead = dead | self._dead
                raise
            self.flushes += 1
            return written

    async def flush_safely(self) -> None:
        """Flush, logging (not raising) a database failure; the events stay buffered."""
        try:
            await self.flush()
        except (SQLAlchemyError, OSError):
            log.exception("audit flush failed; %d events kept for the next one", self.pending)

    async def run(self, interval_s: float = 1.0) -> None:
        """Flush every `interval_s` (or when a batch is full) until `stop()`, then once more."""
        while not self._stop.is_set():
            await _first_of(self._clock.sleep(interval_s), self._full.wait(), self._stop.wait())
            await self.flush_safely()
        await self.flush_safely()

    def stop(self) -> None:
        """Make `run()` do its last flush and return."""
        self._stop.set()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.time(), UTC)


async def _write(conn: AsyncConnection, events: list[_Recorded], dead: list[_Recorded]) -> int:
    """Insert dead jobs, then audit rows, then upsert latest states; return the rows."""
    buried = await _insert_dead(conn, dead)
    audited = events + [each for each in dead if each.job.id in buried]
    if audited:
        await conn.execute(audit_table.insert(), [_audit_row(each) for each in audited])
    states = _latest_states(events + dead)
    await conn.execute(_upsert_jobs(), states)
    return len(buried) + len(audited) + len(states)


async def _insert_dead(conn: AsyncConnection, dead: list[_Recorded]) -> set[str]:
    """Insert DLQ rows, skipping jobs already buried; return the ids this call buried."""
    if not dead:
        return set()
    statement = (
        pg_insert(dead_table)
        .on_conflict_do_nothing(index_elements=["job_id"])
        .returning(dead_table.c.job_id)
    )
    result = await conn.execute(statement, [_dead_row(each) for each in dead])
    return set(result.scalars().all())


def _upsert_jobs() -> Any:
    """Upsert job rows; a row keeps its `created_at`, and an older event never wins."""
    statement = pg_insert(jobs_table)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["id"],
        set_={
            "state": excluded.state,
            "attempts": excluded.attempts,
            "updated_at": excluded.updated_at,
            "last_error": excluded.last_error,
        },
        where=jobs_table.c.updated_at <= excluded.updated_at,
    )


def _latest_states(recorded: list[_Recorded]) -> list[dict[str, Any]]:
    """Return one job row per job id, from its last event."""
    latest: dict[str, dict[str, Any]] = {}
    for each in recorded:
        first_seen = latest[each.job.id]["created_at"] if each.job.id in latest else each.at
        latest[each.job.id] = _job_row(each) | {"created_at": first_seen}
    return list(latest.values())


def _job_row(recorded: _Recorded) -> dict[str, Any]:
    job = recorded.job
    return {
        "id": job.id,
        "type": job.type,
        "payload": job.payload,
        "state": str(_STATE_AFTER[recorded.event]),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "priority": job.priority,
        "created_at": recorded.at,
        "updated_at": recorded.at,
        "last_error": recorded.error,
    }


def _audit_row(recorded: _Recorded) -> dict[str, Any]:
    return {
        "job_id": recorded.job.id,
        "event": str(recorded.event),
        "attempt": recorded.job.attempts,
        "error": recorded.error,
        "at": recorded.at,
    }


def _dead_row(recorded: _Recorded) -> dict[str, Any]:
    return {
        "job_id": recorded.job.id,
        "type": recorded.job.type,
        "payload": recorded.job.payload,
        "attempts": recorded.job.attempts,
        "error": recorded.error or "",
        "died_at": recorded.at,
    }


async def _first_of(*awaitables: Any) -> None:
    """Wait until one of `awaitables` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(each) for each in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
