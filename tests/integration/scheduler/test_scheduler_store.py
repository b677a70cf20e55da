"""The journal drain into PostgreSQL, on the real servers, in the test's own schema."""

import asyncio
import random

import httpx
from redis.asyncio import Redis
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.clients import sql_engine
from labs.clock import ManualClock
from labs.keys import KeyBuilder
from labs.testing.waiting import until
from scheduler.domain import RetryPolicy
from scheduler.handlers import HandlerContext, builtin_handlers
from scheduler.queue import RedisQueue
from scheduler.store import (
    JournalDrain,
    audit_table,
    dead_table,
    ensure_schema,
    jobs_table,
    write_entries,
)
from scheduler.worker import Worker

NO_BACKOFF = RetryPolicy(base_ms=0, cap_ms=0)
T0 = 1_700_000_000_000
LEASE = 1_000


async def count(db: AsyncEngine, query: str) -> int:
    """Return the single integer `query` selects."""
    async with db.connect() as conn:
        return int((await conn.execute(text(query))).scalar_one())


async def drain_for(
    q: RedisQueue, db: AsyncEngine, consumer: str = "d1", **options: int
) -> JournalDrain:
    """A drain of `q`'s journal into `db`, its consumer group created."""
    drain = JournalDrain(
        q.redis, q.journal_key, db, consumer=consumer, clock=ManualClock(), **options
    )
    await drain.ensure_group()
    return drain


async def history(db: AsyncEngine, job_id: str) -> list[tuple[str, int]]:
    """Return the job's audit events, in journal order."""
    query = select(audit_table.c.event, audit_table.c.attempt).where(audit_table.c.job_id == job_id)
    async with db.connect() as conn:
        rows = (await conn.execute(query.order_by(audit_table.c.version))).all()
    return [(row.event, row.attempt) for row in rows]


async def test_one_batch_is_one_transaction_and_keeps_the_latest_state(
    db: AsyncEngine, redis: Redis, keys: KeyBuilder
) -> None:
    """One drain writes every journaled transition in two statements and empties the journal."""
    await ensure_schema(db)
    await ensure_schema(db)  # idempotent
    q = RedisQueue(redis, keys)
    ids = [(await q.enqueue("noop", {"n": n}, priority=2)).id for n in range(50)]
    for lease in await q.claim("w1", 50, LEASE):
        assert await q.ack(lease)
    drain = await drain_for(q, db)

    statements: list[str] = []
    event.listen(db.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert await drain.drain_once() == 150
    assert [s.split()[:3] for s in statements] == [
        ["INSERT", "INTO", "scheduler_audit"],
        ["INSERT", "INTO", "scheduler_jobs"],
    ]
    assert await redis.xlen(q.journal_key) == 0  # acknowledged and deleted after the commit
    assert await drain.drain_once() == 0  # an empty journal costs no transaction
    assert drain.flushes == 1
    async with db.connect() as conn:
        rows = {r.id: r for r in (await conn.execute(select(jobs_table))).all()}
    assert {r.state for r in rows.values()} == {"succeeded"}
    assert (rows[ids[7]].payload, rows[ids[7]].priority, rows[ids[7]].attempts) == ({"n": 7}, 2, 1)
    assert await history(db, ids[7]) == [("enqueued", 0), ("started", 1), ("succeeded", 1)]


async def test_a_drainer_killed_before_its_ack_is_replaced_without_duplicates(
    db: AsyncEngine, redis: Redis, keys: KeyBuilder
) -> None:
    """Entries a dead drainer committed but never acked are taken over and written once."""
    await ensure_schema(db)
    q = RedisQueue(redis, keys)
    job = await q.enqueue("noop")
    [lease] = await q.claim("w1", 1, LEASE)
    await q.ack(lease)
    dead_drainer = await drain_for(q, db, "d1")
    entries = await dead_drainer.read_new()  # read, as a drainer does, then "die"
    async with db.begin() as conn:
        await write_entries(conn, entries)  # committed; the process dies before XACK
    heir = await drain_for(q, db, "d2", stale_ms=0)
    assert await heir.drain_once() == 3
    assert await history(db, job.id) == [("enqueued", 0), ("started", 1), ("succeeded", 1)]
    assert await redis.xlen(q.journal_key) == 0


async def test_an_older_batch_committed_late_never_moves_a_state_back(
    db: AsyncEngine, redis: Redis, keys: KeyBuilder
) -> None:
    """Two drainers committing out of order: the state is the newest entry's."""
    await ensure_schema(db)
    q = RedisQueue(redis, keys)
    job = await q.enqueue("noop", {"x": 1})
    [lease] = await q.claim("w1", 1, LEASE)
    first, second = await drain_for(q, db, "d1", batch=2), await drain_for(q, db, "d2", batch=2)
    older = await first.read_new()  # enqueued, started
    await q.ack(lease)
    newer = await second.read_new()  # succeeded

    async with db.begin() as conn:
        await write_entries(conn, newer)
    async with db.begin() as conn:
        await write_entries(conn, older)
    async with db.connect() as conn:
        row = (await conn.execute(select(jobs_table).where(jobs_table.c.id == job.id))).one()
    assert (row.state, row.payload, row.max_attempts) == ("succeeded", {"x": 1}, 5)


async def test_dead_jobs_reach_the_dlq_through_the_journal(
    db: AsyncEngine, redis: Redis, keys: KeyBuilder
) -> None:
    """A job out of attempts is gone from Redis and in `scheduler_dead` once drained."""
    await ensure_schema(db)
    q = RedisQueue(redis, keys)
    failing = await q.enqueue("fail", {"x": 1}, max_attempts=2, priority=4, now_ms=T0)
    expiring = await q.enqueue("sleep", max_attempts=1, now_ms=T0)
    for attempt in (1, 2):
        [lease] = await q.claim("w1", 1, LEASE, now_ms=T0)
        assert lease.job.attempts == attempt
        await q.nack(lease, 0, "boom", now_ms=T0)
    await q.claim("gone", 1, LEASE, now_ms=T0)
    await q.reclaim(now_ms=T0 + LEASE + 1)
    assert (await q.counts()).live == 0
    await (await drain_for(q, db)).drain_all()
    async with db.connect() as conn:
        dead = {r.job_id: r for r in (await conn.execute(select(dead_table))).all()}
    assert (dead[failing.id].payload, dead[failing.id].priority) == ({"x": 1}, 4)
    assert (dead[failing.id].attempts, dead[failing.id].error) == (2, "boom")
    assert dead[expiring.id].error == "lease expired (worker gone)"
    assert await history(db, failing.id) == [
        ("enqueued", 0),
        ("started", 1),
        ("failed", 1),
        ("retried", 1),
        ("started", 2),
        ("failed", 2),
        ("dead", 2),
    ]


async def test_a_database_outage_keeps_the_entries_in_redis(
    db: AsyncEngine, redis: Redis, keys: KeyBuilder
) -> None:
    """A drain that cannot reach PostgreSQL acks nothing; a later one writes it all."""
    await ensure_schema(db)
    q = RedisQueue(redis, keys)
    await q.enqueue("noop")
    down = sql_engine("postgresql://postgres@127.0.0.1:1/lab", pool_size=1, max_overflow=0)
    try:
        outage = await drain_for(q, down, "d1")
        run = asyncio.create_task(outage.run())
        outage.stop()
        await asyncio.wait_for(run, 30)  # logged, not raised
    finally:
        await down.dispose()
    assert outage.written == 0
    assert await redis.xlen(q.journal_key) == 1
    assert await (await drain_for(q, db, "d2", stale_ms=0)).drain_all() == 1


async def test_run_drains_on_its_interval_and_on_stop(
    db: AsyncEngine, redis: Redis, keys: KeyBuilder
) -> None:
    """The background drain writes each interval and once more on stop."""
    await ensure_schema(db)
    q = RedisQueue(redis, keys)
    clock = ManualClock()
    drain = JournalDrain(redis, q.journal_key, db, consumer="d1", clock=clock)
    running = asyncio.create_task(drain.run(interval_s=1.0))
    await q.enqueue("noop")
    await until(lambda: clock.sleepers == 1, "the drain's timer")
    clock.advance(1)
    await until(lambda: drain.written == 1, "the periodic drain")
    await q.enqueue("noop")
    drain.stop()
    await asyncio.wait_for(running, 10)
    assert drain.written == 2
    assert await count(db, "SELECT count(*) FROM scheduler_audit") == 2


async def test_a_worker_audits_failures_and_buries_the_dead(
    db: AsyncEngine, redis: Redis, keys: KeyBuilder
) -> None:
    """A burst of failing and passing jobs ends in `failed`, `dead` and DLQ rows."""
    await ensure_schema(db)
    q = RedisQueue(redis, keys)
    clock = ManualClock()
    rng = random.Random(3)
    failing = [(await q.enqueue("fail", {"message": "nope"}, max_attempts=3)).id for _ in range(2)]
    passing = (await q.enqueue("noop")).id
    worker = Worker(
        q,
        # No job here is a webhook: the client never opens a connection, so needs no closing.
        builtin_handlers(HandlerContext(clock, rng, redis, httpx.AsyncClient())),
        clock=clock,
        rng=rng,
        retry=NO_BACKOFF,
    )
    await asyncio.wait_for(worker.run(burst=True), 10)
    await (await drain_for(q, db)).drain_all()

    async with db.connect() as conn:
        dead = (await conn.execute(select(dead_table).order_by("job_id"))).all()
        states = dict((await conn.execute(select(jobs_table.c.id, jobs_table.c.state))).all())
    assert [(r.job_id, r.attempts, r.error) for r in dead] == [
        (job_id, 3, "JobFailedError('nope')") for job_id in sorted(failing)
    ]
    for job_id in failing:
        assert await history(db, job_id) == [
            ("enqueued", 0),
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
    assert states == {failing[0]: "dead", failing[1]: "dead", passing: "succeeded"}


FIRST_SCHEMA = (
    """CREATE TABLE scheduler_jobs (id text PRIMARY KEY, type text NOT NULL,
        payload jsonb NOT NULL DEFAULT '{}', state text NOT NULL, attempts integer NOT NULL,
        max_attempts integer NOT NULL, priority integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(), last_error text)""",
    """CREATE TABLE scheduler_audit (id bigserial PRIMARY KEY, job_id text NOT NULL,
        event text NOT NULL CHECK (event IN
            ('enqueued', 'started', 'succeeded', 'failed', 'retried', 'dead', 'requeued')),
        attempt integer NOT NULL, error text, at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE scheduler_dead (job_id text PRIMARY KEY, type text NOT NULL,
        payload jsonb NOT NULL DEFAULT '{}', attempts integer NOT NULL, error text NOT NULL,
        died_at timestamptz NOT NULL DEFAULT now())""",
    "INSERT INTO scheduler_audit (job_id, event, attempt) VALUES ('old', 'started', 1)",
)


async def test_tables_of_the_first_schema_are_brought_up_to_date(
    db: AsyncEngine, redis: Redis, keys: KeyBuilder
) -> None:
    """Tables made by the first release get the new columns once; their rows are kept."""
    async with db.begin() as conn:
        for statement in FIRST_SCHEMA:
            await conn.execute(text(statement))
    await ensure_schema(db)
    await ensure_schema(db)  # the second start changes nothing
    q = RedisQueue(redis, keys)
    job = await q.enqueue("noop")
    [lease] = await q.claim("w1", 1, LEASE)
    await q.release(lease)  # a `released` event: refused by the first schema's CHECK
    await (await drain_for(q, db)).drain_all()
    assert await history(db, job.id) == [("enqueued", 0), ("started", 1), ("released", 0)]
    assert await count(db, "SELECT count(*) FROM scheduler_audit WHERE job_id = 'old'") == 1
