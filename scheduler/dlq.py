"""The dead-letter queue in PostgreSQL: list, inspect, requeue and purge dead jobs.

Pattern: `scheduler_dead` (written by the journal drain, `scheduler.store`) is read newest
first with keyset pagination: the cursor is the last row's `(died_at, job_id)`, so a
page costs an index range scan however deep it is, and rows buried meanwhile never
shift a page. Requeue moves rows back to the Redis queue in batches, each batch one
PostgreSQL transaction: lock the rows (`FOR UPDATE SKIP LOCKED`, so two requeues, or a
requeue and a purge, never take the same row), enqueue each to Redis under its own job
id with a fresh attempt count (the enqueue journals the `requeued` event in the same
script), delete the rows, commit.

Guarantee: nothing lost, nothing duplicated, even if the process dies half way. Redis
`enqueue` refuses an id that is already live, so enqueuing the same dead job twice
makes one job. The crash windows, batch by batch:

- Before the commit (after some Redis enqueues): the transaction rolls back and the
  rows stay dead; the jobs already enqueued are live. Requeuing again finds them live
  (no second copy) and deletes the rows. Lost: nothing. Duplicated: nothing, unless
  such a job already *finished* before the retry: then it runs once more, the
  at-least-once edge every queue here has (decision 0005).
- After the commit: the job is live, the row gone, and its `requeued` event is in the
  journal, which a drain writes to the audit log.
- Redis or PostgreSQL failing mid-batch raises; the same rules apply to the retry.

A requeue of "all of a type" takes a snapshot of the matching ids first, so jobs that
die again while it runs are not requeued in a loop. Purge is one `DELETE` (it waits for
rows a requeue holds, then skips them as gone). Nothing here speaks HTTP: the API
(`scheduler.api`) and `lab dlq` share it.
"""

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, delete, func, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from scheduler.domain import DEFAULT_MAX_ATTEMPTS, MIN_PRIORITY, Job
from scheduler.jobs import HistoryEntry, history
from scheduler.queue import RedisQueue
from scheduler.store import dead_table

REQUEUE_BATCH = 100
"""Rows moved per transaction: bounds how long row locks are held."""
MAX_PAGE = 500


class InvalidCursorError(ValueError):
    """A pagination cursor this module did not produce."""


@dataclass(frozen=True)
class DeadEntry:
    """One dead job: its last error and how many attempts it used."""

    job_id: str
    type: str
    payload: dict[str, Any]
    attempts: int
    error: str
    died_at: datetime


@dataclass(frozen=True)
class DeadDetail(DeadEntry):
    """A dead job with its audit history."""

    history: list[HistoryEntry]


@dataclass(frozen=True)
class Page:
    """Dead jobs, newest first; `next_cursor` fetches the next page (None: the last)."""

    entries: list[DeadEntry]
    next_cursor: str | None


@dataclass(frozen=True)
class Selection:
    """Which dead jobs: these `ids`, or all of `job_type` and/or died before `older_than`."""

    ids: tuple[str, ...] = field(default=())
    job_type: str | None = None
    older_than: datetime | None = None

    def __post_init__(self) -> None:
        """Refuse an empty selection (never "everything" by accident) and mixed ones."""
        by_filter = self.job_type is not None or self.older_than is not None
        if self.ids and by_filter:
            raise ValueError("select dead jobs by ids, or by type and/or age, not both")
        if not self.ids and not by_filter:
            raise ValueError("select dead jobs by ids, by type, or by age")

    def clause(self) -> ColumnElement[bool]:
        """Return the SQL condition on `scheduler_dead`."""
        if self.ids:
            return dead_table.c.job_id.in_(self.ids)
        conditions = [
            dead_table.c.type == self.job_type if self.job_type is not None else true(),
            dead_table.c.died_at < self.older_than if self.older_than is not None else true(),
        ]
        return and_(*conditions)


async def list_dead(
    engine: AsyncEngine, *, job_type: str | None = None, limit: int = 50, cursor: str | None = None
) -> Page:
    """Return up to `limit` dead jobs (of `job_type`), newest first, after `cursor`."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}")
    order = (dead_table.c.died_at.desc(), dead_table.c.job_id.desc())
    statement = select(dead_table).order_by(*order).limit(limit + 1)
    if job_type is not None:
        statement = statement.where(dead_table.c.type == job_type)
    if cursor is not None:
        statement = statement.where(
            tuple_(dead_table.c.died_at, dead_table.c.job_id) < tuple_(*decode_cursor(cursor))
        )
    async with engine.connect() as conn:
        entries = [_entry(row) for row in await conn.execute(statement)]
    more = len(entries) > limit
    return Page(entries[:limit], encode_cursor(entries[limit - 1]) if more else None)


async def inspect(engine: AsyncEngine, job_id: str) -> DeadDetail | None:
    """Return the dead job with its history, or None if it is not in the DLQ."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(dead_table).where(dead_table.c.job_id == job_id))).first()
        if row is None:
            return None
        return DeadDetail(**asdict(_entry(row)), history=await history(conn, job_id))


async def requeue(engine: AsyncEngine, queue: RedisQueue, selection: Selection) -> int:
    """Move the selected dead jobs back to `queue` with fresh attempts; return how many."""
    ids = await _matching_ids(engine, selection)
    moved = 0
    for start in range(0, len(ids), REQUEUE_BATCH):
        moved += await _requeue_batch(engine, queue, ids[start : start + REQUEUE_BATCH])
    return moved


async def purge(engine: AsyncEngine, selection: Selection) -> int:
    """Delete the selected dead jobs for good; return how many."""
    async with engine.begin() as conn:
        result = await conn.execute(
            delete(dead_table).where(selection.clause()).returning(dead_table.c.job_id)
        )
        return len(result.all())


async def size(engine: AsyncEngine) -> int:
    """Return how many jobs are in the DLQ."""
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(dead_table)) or 0)


def encode_cursor(entry: DeadEntry) -> str:
    """Return an opaque cursor pointing just past `entry`."""
    raw = json.dumps([entry.died_at.isoformat(), entry.job_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Return the `(died_at, job_id)` a cursor points past; `InvalidCursorError` if forged."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        died_at, job_id = json.loads(raw)
        at = datetime.fromisoformat(died_at)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidCursorError("not a cursor this API returned") from exc
    if at.tzinfo is None or not isinstance(job_id, str):
        raise InvalidCursorError("not a cursor this API returned")
    return at, job_id


async def _matching_ids(engine: AsyncEngine, selection: Selection) -> list[str]:
    """Snapshot the selected ids, oldest death first."""
    statement = (
        select(dead_table.c.job_id)
        .where(selection.clause())
        .order_by(dead_table.c.died_at, dead_table.c.job_id)
    )
    async with engine.connect() as conn:
        return list((await conn.execute(statement)).scalars())


async def _requeue_batch(engine: AsyncEngine, queue: RedisQueue, ids: Sequence[str]) -> int:
    """Lock, enqueue, delete and commit one batch."""
    locked = (
        select(dead_table).where(dead_table.c.job_id.in_(ids)).with_for_update(skip_locked=True)
    )
    async with engine.begin() as conn:
        jobs = [_fresh_job(row) for row in await conn.execute(locked)]
        for job in jobs:
            await queue.enqueue(
                job.type,
                job.payload,
                priority=job.priority,
                max_attempts=job.max_attempts,
                job_id=job.id,
                requeue=True,
            )
        if jobs:
            moved = [job.id for job in jobs]
            await conn.execute(delete(dead_table).where(dead_table.c.job_id.in_(moved)))
    return len(jobs)


def _fresh_job(row: Row[Any]) -> Job:
    """Return the dead row as a job with no attempts used (its priority and cap kept)."""
    return Job(
        id=row.job_id,
        type=row.type,
        payload=row.payload,
        priority=MIN_PRIORITY if row.priority is None else row.priority,
        max_attempts=DEFAULT_MAX_ATTEMPTS if row.max_attempts is None else row.max_attempts,
    )


def _entry(row: Row[Any]) -> DeadEntry:
    return DeadEntry(row.job_id, row.type, row.payload, row.attempts, row.error, row.died_at)
