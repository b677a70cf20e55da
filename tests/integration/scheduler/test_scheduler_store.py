"""The PostgreSQL audit trail and dead-letter table, on the real server, in the test's schema."""

import asyncio
import random

import httpx
from redis.asyncio import Redis
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.clock import ManualClock
from labs.keys import KeyBuilder
from labs.testing.waiting import until
from scheduler.domain import DeadJob, Job, RetryPolicy
from scheduler.handlers import HandlerContext, builtin_handlers
from scheduler.queue import RedisQueue
from scheduler.store import (
    AuditEvent,
    AuditWriter,
    audit_table,
    dead_table,
    ensure_schema,
    jobs_table,
)
from scheduler.worker import Worker

NO_BACKOFF = RetryPolicy(base_ms=0, cap_ms=0)


async def count(db: AsyncEngine, query: str) -> int:
    """Return the single integer `query` selects."""
    async with db.connect() as conn:
        return int((await conn.execute(text(query))).scalar_one())


async def test_one_flush_writes_every_buffered_event_and_keeps_the_latest_state(
    db: AsyncEngine,
) -> None:
    """One flush writes every buffered event and keeps the latest state."""
    await ensure_schema(db)
    await ensure_schema(db)  # idempotent
    clock = ManualClock()
    audit = AuditWriter(db, clock=clock)
    jobs = [Job(id=f"j{n}", type="noop", payload={"n": n}) for n in range(50)]
    for job in jobs:
        audit.record(AuditEvent.ENQUEUED, job)
    clock.advance(1)
    for job in jobs:
        started = Job(id=job.id, type=job.type, payload=job.payload, attempts=1)
        audit.record(AuditEvent.STARTED, started)
        audit.record(AuditEvent.SUCCEEDED, started)
    assert audit.pending == 150
    assert await count(db, "SELECT count(*) FROM scheduler_audit") == 0  # nothing on the hot path

    statements: list[str] = []
    event.listen(db.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert await audit.flush() == 150 + 50
    assert [s.split()[:3] for s in statements] == [  # one multi-row INSERT, one upsert
        ["INSERT", "INTO", "scheduler_audit"],
        ["INSERT", "INTO", "scheduler_jobs"],
    ]
    assert audit.flushes == 1
    assert audit.pending == 0
    assert await count(db, "SELECT count(*) FROM scheduler_audit") == 150
    async with db.connect() as conn:
        grouped = select(jobs_table.c.state, func.count().label("n")).group_by(jobs_table.c.state)
        states: dict[str, int] = {r.state: r.n for r in (await conn.execute(grouped)).all()}
        row = (await conn.execute(select(jobs_table).where(jobs_table.c.id == "j7"))).one()
    assert states == {"succeeded": 50}
    assert row.payload == {"n": 7}
    assert row.attempts == 1
    assert row.updated_at.timestamp() - row.created_at.timestamp() == 1
    assert await audit.flush() == 0  # an empty buffer costs no transaction
    assert audit.flushes == 1


async def test_an_older_state_never_overwrites_a_newer_one(db: AsyncEngine) -> None:
    """An older state never overwrites a newer one."""
    await ensure_schema(db)
    late, early = ManualClock(start=2_000_000_000), ManualClock()
    job = Job(id="j", type="noop", attempts=1)
    newer = AuditWriter(db, clock=late)
    newer.record(AuditEvent.SUCCEEDED, job)
    await newer.flush()
    older = AuditWriter(db, clock=early)  # e.g. a stalled worker's buffer, flushed late
    older.record(AuditEvent.STARTED, job)
    await older.flush()
    async with db.connect() as conn:
        state = (await conn.execute(select(jobs_table.c.state))).scalar_one()
    assert state == "succeeded"
    assert await count(db, "SELECT count(*) FROM scheduler_audit") == 2


async def test_bury_is_idempotent(db: AsyncEngine) -> None:
    """Burying a job twice leaves one DLQ row and one `dead` audit row."""
    await ensure_schema(db)
    audit = AuditWriter(db, clock=ManualClock())
    dead = DeadJob(Job(id="d1", type="fail", payload={"x": 1}, attempts=3), "boom")
    await audit.bury(dead)
    await audit.bury(dead)
    assert audit.flushes == 2
    async with db.connect() as conn:
        rows = (await conn.execute(select(dead_table))).all()
        events = (await conn.execute(select(audit_table.c.event, audit_table.c.attempt))).all()
        state = (await conn.execute(select(jobs_table.c.state))).scalar_one()
    assert [(r.job_id, r.type, r.payload, r.attempts, r.error) for r in rows] == [
        ("d1", "fail", {"x": 1}, 3, "boom")
    ]
    assert [tuple(each) for each in events] == [("dead", 3)]
    assert state == "dead"


async def test_a_failed_flush_keeps_its_events_for_the_next(db: AsyncEngine) -> None:
    """A failed flush (here: no tables yet) keeps its events, and the next one writes them."""
    audit = AuditWriter(db, clock=ManualClock())
    audit.record(AuditEvent.STARTED, Job(id="a", type="noop", attempts=1))
    await audit.bury(DeadJob(Job(id="b", type="fail", attempts=1), "boom"))  # logs, no raise
    assert audit.pending == 2
    await ensure_schema(db)
    await audit.flush()
    assert audit.pending == 0
    assert await count(db, "SELECT count(*) FROM scheduler_dead") == 1
    assert await count(db, "SELECT count(*) FROM scheduler_audit") == 2


async def test_run_flushes_on_its_interval_and_on_stop(db: AsyncEngine) -> None:
    """The background flusher writes each interval and once more on stop."""
    await ensure_schema(db)
    clock = ManualClock()
    audit = AuditWriter(db, clock=clock)
    running = asyncio.create_task(audit.run(interval_s=1.0))
    audit.record(AuditEvent.STARTED, Job(id="a", type="noop", attempts=1))
    await until(lambda: clock.sleepers == 1, "the flusher's timer")
    clock.advance(1)
    await until(lambda: audit.flushes == 1, "the periodic flush")
    audit.record(AuditEvent.SUCCEEDED, Job(id="a", type="noop", attempts=1))
    audit.stop()
    await asyncio.wait_for(running, 10)
    assert audit.flushes == 2
    assert await count(db, "SELECT count(*) FROM scheduler_audit") == 2


async def test_a_worker_with_the_store_audits_failures_and_buries_the_dead(
    db: AsyncEngine, redis: Redis, keys: KeyBuilder
) -> None:
    """A burst of failing and passing jobs ends in n `failed`, `dead` and DLQ rows."""
    await ensure_schema(db)
    q = RedisQueue(redis, keys)
    clock = ManualClock()
    rng = random.Random(3)
    audit = AuditWriter(db, clock=clock)
    failing = [(await q.enqueue("fail", {"message": "nope"}, max_attempts=3)).id for _ in range(2)]
    passing = (await q.enqueue("noop")).id
    worker = Worker(
        q,
        # No job here is a webhook: the client never opens a connection, so needs no closing.
        builtin_handlers(HandlerContext(clock, rng, redis, httpx.AsyncClient())),
        clock=clock,
        rng=rng,
        retry=NO_BACKOFF,
        audit=audit,
    )
    await asyncio.wait_for(worker.run(burst=True), 10)
    await audit.flush()

    async with db.connect() as conn:
        dead = (await conn.execute(select(dead_table).order_by("job_id"))).all()
        events = (
            await conn.execute(
                select(audit_table.c.job_id, audit_table.c.event, audit_table.c.attempt).order_by(
                    audit_table.c.id
                )
            )
        ).all()
        states = dict((await conn.execute(select(jobs_table.c.id, jobs_table.c.state))).all())
    assert [(r.job_id, r.attempts, r.error) for r in dead] == [
        (job_id, 3, "JobFailedError('nope')") for job_id in sorted(failing)
    ]
    for job_id in failing:
        assert [(e.event, e.attempt) for e in events if e.job_id == job_id] == [
            ("started", 1),
            ("failed", 1),
            ("retried", 1),
            ("started", 2),
            ("failed", 2),
            ("retried", 2),
            ("started", 3),
            ("failed", 3),
            ("dead", 3),
        ]
    assert [(e.event, e.attempt) for e in events if e.job_id == passing] == [
        ("started", 1),
        ("succeeded", 1),
    ]
    assert states == {failing[0]: "dead", failing[1]: "dead", passing: "succeeded"}
