"""The PostgreSQL adapter: the audit trail, each job's latest state, and the DLQ.

Pattern: a transactional outbox in Redis. Every queue script appends its transition to
the queue's journal (a Redis stream) in the same atomic step that makes it, so the
journal cannot miss a transition or disagree with the queue. `JournalDrain` reads the
journal through a consumer group in batches and writes each batch in one PostgreSQL
transaction: one multi-row `INSERT` of audit rows, one upsert of the jobs' latest
states, one upsert of DLQ rows for dead jobs; only after the commit does it acknowledge
and delete those entries. Guarantee: every transition reaches PostgreSQL at least once
and is written once (an audit row's key is its job and journal position; a job's state
only moves to a later entry, by journal order, whatever order drainers commit in),
even if a worker or drainer is SIGKILLed at any moment: unacknowledged entries stay in
the stream, and a live drainer claims the entries a dead one left pending. A dead job
leaves Redis only as its journal entry, so it reaches the DLQ or stays in Redis.
PostgreSQL sees a few statements per batch, not one per job event.
Failure it handles: PostgreSQL down — entries wait in Redis and the drain retries;
the queue stops claiming once the backlog reaches its cap (`scheduler.queue`), so an
outage slows dispatch rather than growing Redis without bound.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    case,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from labs.clock import Clock
from scheduler.domain import JobState

log = logging.getLogger(__name__)

_SCHEMA_LOCK = 0x5C4ED
"""Advisory lock key: workers starting together must not race `CREATE TABLE IF NOT EXISTS`."""
GROUP = "audit"
"""The journal's consumer group: every drainer of a queue reads through it."""
STALE_MS = 10_000
"""Entries another drainer read and has not acked for this long are taken over: it died,
or is far slower than a batch takes. Taking over a live one's batch costs a second,
idempotent write; waiting longer delays a dead one's audit rows by as much."""


class AuditEvent(StrEnum):
    """What happened to a job; each event also sets the job's state in `scheduler_jobs`."""

    ENQUEUED = "enqueued"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRIED = "retried"
    DEAD = "dead"
    REQUEUED = "requeued"
    """Sent back from the DLQ."""
    RELEASED = "released"
    """Handed back unfinished by a worker draining on SIGTERM; no attempt used."""


_EVENTS = ", ".join(f"'{event}'" for event in AuditEvent)
SCHEMA_DDL = (
    """CREATE TABLE IF NOT EXISTS scheduler_jobs (
        id text PRIMARY KEY,
        type text NOT NULL,
        payload jsonb,
        state text NOT NULL,
        attempts integer NOT NULL,
        max_attempts integer,
        priority integer,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        last_error text,
        version bigint NOT NULL DEFAULT 0
    )""",
    f"""CREATE TABLE IF NOT EXISTS scheduler_audit (
        id bigserial PRIMARY KEY,
        job_id text NOT NULL,
        version bigint,
        event text NOT NULL CONSTRAINT scheduler_audit_event_check CHECK (event IN ({_EVENTS})),
        attempt integer NOT NULL,
        error text,
        at timestamptz NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS scheduler_dead (
        job_id text PRIMARY KEY,
        type text NOT NULL,
        payload jsonb NOT NULL DEFAULT '{}',
        priority integer NOT NULL DEFAULT 0,
        attempts integer NOT NULL,
        max_attempts integer NOT NULL DEFAULT 5,
        error text NOT NULL,
        died_at timestamptz NOT NULL DEFAULT now()
    )""",
    # Tables made by the first schema (an audit written behind from worker memory) are
    # brought up to date once; the check keeps every later start from taking the
    # tables' exclusive lock (ALTER TABLE takes it even when there is nothing to do).
    f"""DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'scheduler_jobs'::regclass
                   AND attname = 'version' AND NOT attisdropped) THEN
        ALTER TABLE scheduler_jobs ADD COLUMN version bigint NOT NULL DEFAULT 0,
            ALTER COLUMN payload DROP NOT NULL,
            ALTER COLUMN max_attempts DROP NOT NULL,
            ALTER COLUMN priority DROP NOT NULL;
        ALTER TABLE scheduler_audit ADD COLUMN IF NOT EXISTS version bigint,
            DROP CONSTRAINT IF EXISTS scheduler_audit_event_check,
            ADD CONSTRAINT scheduler_audit_event_check CHECK (event IN ({_EVENTS}));
        ALTER TABLE scheduler_dead
            ADD COLUMN IF NOT EXISTS priority integer NOT NULL DEFAULT 0,
            ADD COLUMN IF NOT EXISTS max_attempts integer NOT NULL DEFAULT 5;
    END IF;
    END $$""",  # noqa: S608 - the only value put in is the AuditEvent names
    """CREATE UNIQUE INDEX IF NOT EXISTS scheduler_audit_job_version
        ON scheduler_audit (job_id, version)""",
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
    Column("payload", JSONB(none_as_null=True)),
    Column("state", Text),
    Column("attempts", Integer),
    Column("max_attempts", Integer),
    Column("priority", Integer),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("version", BigInteger),
)
audit_table = Table(
    "scheduler_audit",
    _metadata,
    Column("id", BigInteger, primary_key=True),
    Column("job_id", Text),
    Column("version", BigInteger),
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
    Column("priority", Integer),
    Column("attempts", Integer),
    Column("max_attempts", Integer),
    Column("error", Text),
    Column("died_at", DateTime(timezone=True)),
)

_STATE_AFTER = {
    AuditEvent.STARTED: JobState.RUNNING,
    AuditEvent.SUCCEEDED: JobState.SUCCEEDED,
    AuditEvent.FAILED: JobState.RETRYING,
    AuditEvent.RETRIED: JobState.RETRYING,
    AuditEvent.DEAD: JobState.DEAD,
    AuditEvent.RELEASED: JobState.QUEUED,
}


@dataclass(frozen=True)
class JournalEntry:
    """One journaled transition, as the queue scripts wrote it."""

    entry_id: str
    event: AuditEvent
    job_id: str
    job_type: str
    attempt: int
    fields: Mapping[str, str]
    """The rest: `err`, and for enqueued/requeued/dead jobs `p` (payload), `pr`, `m`, `s`."""

    @classmethod
    def parse(cls, entry_id: bytes | str, raw: Mapping[bytes | str, bytes | str]) -> "JournalEntry":
        """Return the entry a stream read returned."""
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return cls(
            entry_id=_text(entry_id),
            event=AuditEvent(fields.pop("e")),
            job_id=fields.pop("id"),
            job_type=fields.pop("t"),
            attempt=int(fields.pop("a")),
            fields=fields,
        )

    @property
    def version(self) -> int:
        """Return the entry's place in the journal's order (stream ids only grow)."""
        ms, seq = self.entry_id.split("-")
        return int(ms) * 1_000_000 + int(seq)

    @property
    def at(self) -> datetime:
        """Return when Redis journaled it (the stream id's millisecond)."""
        return datetime.fromtimestamp(int(self.entry_id.split("-")[0]) / 1000, UTC)

    @property
    def state(self) -> JobState:
        """Return the job's state after this event."""
        if self.event in (AuditEvent.ENQUEUED, AuditEvent.REQUEUED):
            return JobState(self.fields.get("s", JobState.QUEUED))
        return _STATE_AFTER[self.event]


async def ensure_schema(engine: AsyncEngine) -> None:
    """Create (or bring up to date) the scheduler's tables in the connection's schema."""
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        for statement in SCHEMA_DDL:
            await conn.execute(text(statement))


class JournalDrain:
    """Moves a queue's journal into PostgreSQL in batches; one per worker process."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        journal_key: str,
        engine: AsyncEngine,
        *,
        consumer: str,
        clock: Clock,
        batch: int = 1_000,
        stale_ms: int = STALE_MS,
    ) -> None:
        """Drain `journal_key` as `consumer`; take over entries idle `stale_ms` elsewhere."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._redis = redis
        self._journal = journal_key
        self._engine = engine
        self._consumer = consumer
        self._clock = clock
        self._batch = batch
        self._stale_ms = stale_ms
        self._stop = asyncio.Event()
        self._grouped = False
        self._one_batch_at_a_time = asyncio.Lock()
        self.written = 0
        """Journal entries written to PostgreSQL, for tests and metrics."""
        self.flushes = 0
        """Transactions committed, for tests and metrics."""

    async def ensure_group(self) -> None:
        """Create the journal's consumer group (and the stream) unless it exists."""
        try:
            await self._redis.xgroup_create(self._journal, GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._grouped = True

    async def drain_once(self) -> int:
        """Write one batch: entries a dead drainer left, else new ones; return how many.

        Calls take turns, so a `drain_all()` made while `run()` is writing a batch returns
        only once that batch is committed too.
        """
        async with self._one_batch_at_a_time:
            return await self._drain_batch()

    async def _drain_batch(self) -> int:
        if not self._grouped:
            await self.ensure_group()
        try:
            entries = await self._mine() or await self._stale() or await self.read_new()
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            # The stream was deleted (a Redis restart without persistence, a flush):
            # recreate the group; whatever is journaled from now on is drained.
            await self.ensure_group()
            return 0
        if not entries:
            return 0
        async with self._engine.begin() as conn:
            await write_entries(conn, entries)
        ids = [entry.entry_id for entry in entries]
        async with self._redis.pipeline(transaction=True) as pipe:
            _ = pipe.xack(self._journal, GROUP, *ids)
            _ = pipe.xdel(self._journal, *ids)
            await pipe.execute()
        self.written += len(entries)
        self.flushes += 1
        return len(entries)

    async def drain_all(self) -> int:
        """Drain until the journal is empty (for tests and a clean stop); return how many."""
        total = 0
        while drained := await self.drain_once():
            total += drained
        return total

    async def run(self, interval_s: float = 0.2) -> None:
        """Drain until `stop()`: a full batch at once, else every `interval_s`; then the rest."""
        while not self._stop.is_set():
            drained = await self._drain_safely()
            if drained < self._batch:
                await _first_of(self._clock.sleep(interval_s), self._stop.wait())
        await self._drain_safely(until_empty=True)

    def stop(self) -> None:
        """Make `run()` drain what is left and return."""
        self._stop.set()

    @asynccontextmanager
    async def running(self, interval_s: float) -> AsyncIterator[None]:
        """Run the drain in the background for the block, then stop it and drain the rest.

        Stopped, not cancelled: a cancel landing inside a database round trip can be
        swallowed on the way out of it, and `run()` would then sleep forever.
        """
        task = asyncio.create_task(self.run(interval_s))
        try:
            yield
        finally:
            self.stop()
            await task

    async def _drain_safely(self, *, until_empty: bool = False) -> int:
        """Drain, logging (not raising) a server failure: the entries stay in the journal."""
        try:
            return await (self.drain_all() if until_empty else self.drain_once())
        except (SQLAlchemyError, RedisError, OSError):
            log.exception("journal drain failed; its entries stay in Redis for the next try")
            return 0

    async def read_new(self) -> list[JournalEntry]:
        """Read up to a batch of new entries: delivered to this consumer, not yet acked."""
        return await self._read(">")

    async def _mine(self) -> list[JournalEntry]:
        """Re-read entries this consumer read but never acked (a failed or cancelled write)."""
        return await self._read("0")

    async def _read(self, start: str) -> list[JournalEntry]:
        reply: Any = await self._redis.xreadgroup(
            GROUP, self._consumer, {self._journal: start}, count=self._batch
        )  # [(stream, [(id, fields), ...])]; deleted entries come back with no fields
        return [JournalEntry.parse(i, f) for _, messages in reply for i, f in messages if f]

    async def _stale(self) -> list[JournalEntry]:
        reply: list[Any] = await self._redis.xautoclaim(
            self._journal, GROUP, self._consumer, self._stale_ms, "0-0", count=self._batch
        )  # [next start, [(id, fields), ...], deleted ids]
        return [JournalEntry.parse(i, f) for i, f in reply[1] if f]


async def write_entries(conn: AsyncConnection, entries: Sequence[JournalEntry]) -> None:
    """Write journal entries: audit rows, latest job states, DLQ rows; each idempotent."""
    # Rows go in key order, so drainers whose batches overlap lock them in the same order
    # (no deadlock between two drainers writing the same jobs).
    entries = sorted(entries, key=lambda entry: (entry.job_id, entry.version))
    audit = pg_insert(audit_table).on_conflict_do_nothing(index_elements=["job_id", "version"])
    await conn.execute(audit, [_audit_row(entry) for entry in entries])
    await conn.execute(_upsert_jobs(), _latest_states(entries))
    dead = [_dead_row(entry) for entry in entries if entry.event is AuditEvent.DEAD]
    if dead:
        await conn.execute(_upsert_dead(), _one_per_job(dead, "job_id"))


def _upsert_jobs() -> Any:
    """Upsert job rows: state from the newest entry only; job data from whichever has it."""
    statement = pg_insert(jobs_table)
    new, old = statement.excluded, jobs_table.c
    newer = old.version < new.version

    def if_newer(column: str) -> Any:
        return case((newer, new[column]), else_=old[column])

    return statement.on_conflict_do_update(
        index_elements=["id"],
        set_={
            "state": if_newer("state"),
            "attempts": if_newer("attempts"),
            "last_error": if_newer("last_error"),
            "updated_at": if_newer("updated_at"),
            "version": func.greatest(old.version, new.version),
            "payload": func.coalesce(new.payload, old.payload),
            "max_attempts": func.coalesce(new.max_attempts, old.max_attempts),
            "priority": func.coalesce(new.priority, old.priority),
            "created_at": func.least(old.created_at, new.created_at),
        },
    )


def _upsert_dead() -> Any:
    """Upsert DLQ rows: a job requeued and dead again keeps one row, its latest death."""
    statement = pg_insert(dead_table)
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["job_id"],
        set_={c: new[c] for c in ("payload", "attempts", "error", "died_at")},
    )


def _latest_states(entries: Sequence[JournalEntry]) -> list[dict[str, Any]]:
    """Return one job row per job: state from its newest entry, data from any that has it."""
    rows: dict[str, dict[str, Any]] = {}
    for entry in sorted(entries, key=lambda each: each.version):
        row = rows.setdefault(
            entry.job_id,
            {"payload": None, "max_attempts": None, "priority": None, "created_at": entry.at},
        )
        row |= {
            "id": entry.job_id,
            "type": entry.job_type,
            "state": str(entry.state),
            "attempts": entry.attempt,
            "updated_at": entry.at,
            "last_error": entry.fields.get("err"),
            "version": entry.version,
        }
        if "p" in entry.fields:
            row |= _job_data(entry)
    return [rows[job_id] for job_id in sorted(rows)]


def _job_data(entry: JournalEntry) -> dict[str, Any]:
    return {
        "payload": json.loads(entry.fields["p"]),
        "max_attempts": int(entry.fields["m"]),
        "priority": int(entry.fields["pr"]),
    }


def _audit_row(entry: JournalEntry) -> dict[str, Any]:
    return {
        "job_id": entry.job_id,
        "version": entry.version,
        "event": str(entry.event),
        "attempt": entry.attempt,
        "error": entry.fields.get("err"),
        "at": entry.at,
    }


def _dead_row(entry: JournalEntry) -> dict[str, Any]:
    return {
        "job_id": entry.job_id,
        "type": entry.job_type,
        "attempts": entry.attempt,
        "error": entry.fields.get("err", ""),
        "died_at": entry.at,
        **_job_data(entry),
    }


def _one_per_job(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Keep the last row per job: one statement may not upsert a row twice."""
    return list({row[key]: row for row in rows}.values())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


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
