"""Reading one job: its live state from Redis, else its last recorded state in PostgreSQL.

Pattern: read-through over two stores with different roles. While a job lives, Redis
(its hash, `RedisQueue.peek`) is the truth; once it is acked or dead it leaves Redis and
only PostgreSQL knows it (`scheduler_jobs`, the latest state the audit writer recorded).
Its history is the job's `scheduler_audit` rows in order. Guarantee: a live job is
always reported with its live state. What it does not hide: the audit trail is written
behind in batches (about once a second), so the history, and the PostgreSQL state of a
job that just left Redis, can trail reality by about one flush; a job acked before its
first flush is briefly unknown.
"""

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scheduler.queue import RedisQueue
from scheduler.store import audit_table, jobs_table


@dataclass(frozen=True)
class HistoryEntry:
    """One audit event of a job."""

    event: str
    attempt: int
    error: str | None
    at: datetime


@dataclass(frozen=True)
class JobStatus:
    """A job as clients see it; `source` says which store answered."""

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
    history: list[HistoryEntry] = field(default_factory=list)


async def job_status(queue: RedisQueue, engine: AsyncEngine, job_id: str) -> JobStatus | None:
    """Return the job's live state (Redis) or last recorded one (PostgreSQL), with history."""
    live = await queue.peek(job_id)
    async with engine.connect() as conn:
        status = _from_redis(live) if live else await _from_postgres(conn, job_id)
        if status is None:
            return None
        return replace(status, history=await history(conn, job_id))


async def history(conn: AsyncConnection, job_id: str) -> list[HistoryEntry]:
    """Return the job's audit events, oldest first."""
    rows = await conn.execute(
        select(audit_table.c.event, audit_table.c.attempt, audit_table.c.error, audit_table.c.at)
        .where(audit_table.c.job_id == job_id)
        .order_by(audit_table.c.version, audit_table.c.id)  # journal order
    )
    return [HistoryEntry(row.event, row.attempt, row.error, row.at) for row in rows]


def _from_redis(fields: dict[str, str]) -> JobStatus:
    run_at = fields.get("run_at")
    return JobStatus(
        id=fields["id"],
        type=fields["type"],
        payload=json.loads(fields["payload"]),
        state=fields["state"],
        attempts=int(fields["attempts"]),
        max_attempts=int(fields["max_attempts"]),
        priority=int(fields["priority"]),
        run_at=datetime.fromtimestamp(int(run_at) / 1000, UTC) if run_at else None,
        error=fields.get("error") or None,
        source="redis",
    )


async def _from_postgres(conn: AsyncConnection, job_id: str) -> JobStatus | None:
    row = (await conn.execute(select(jobs_table).where(jobs_table.c.id == job_id))).first()
    if row is None:
        return None
    return JobStatus(
        id=row.id,
        type=row.type,
        payload=row.payload,
        state=row.state,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        priority=row.priority,
        run_at=None,
        error=row.last_error,
        source="postgres",
    )
