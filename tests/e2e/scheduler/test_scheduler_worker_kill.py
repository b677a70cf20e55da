"""A worker process SIGKILLed mid-job: redelivered within the lease, and fully audited.

Another worker gets the job again within the lease, and the audit trail in PostgreSQL
still holds every transition, the kill's included.

Real time by nature: the behaviour under test is a real lease of a killed process
expiring on the Redis clock. The lease is 1 s, so the test takes about 2 s after start-up.
"""

import asyncio
import random
import signal
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.clock import SystemClock
from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from scheduler.domain import Job
from scheduler.queue import RedisQueue
from scheduler.store import JournalDrain, audit_table, ensure_schema
from scheduler.worker import Worker

LEASE_MS = 1_000
MARGIN_S = 0.5
"""Reclaim polling (50 ms), a Redis round trip or two, and a loaded CI machine."""


async def test_a_killed_workers_job_is_delivered_again_within_the_lease(
    redis: Redis,
    keys: KeyBuilder,
    lab_urls: ServerUrls,
    public_db: AsyncEngine,
    start_worker: Callable[..., Awaitable[asyncio.subprocess.Process]],
) -> None:
    """A killed worker's job is delivered again within the lease; its audit is complete."""
    q = RedisQueue(redis, keys)
    job = await q.enqueue("sleep", {"ms": 60_000})
    first = await start_worker(
        "--lease-ms",
        str(LEASE_MS),
        "--concurrency",
        "1",
        "--database-url",
        lab_urls.require("database_url"),
    )
    try:
        started = time.monotonic()
        while (owner := await q.owner(job.id)) is None:
            assert first.returncode is None, "the worker process exited"
            assert time.monotonic() - started < 30, "the worker process never claimed the job"
            await asyncio.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.wait_for(first.wait(), 10)
    finally:
        if first.returncode is None:
            first.kill()
            await asyncio.wait_for(first.wait(), 10)

    delivered: asyncio.Future[tuple[float, Job]] = asyncio.get_running_loop().create_future()

    async def record(again: Job) -> None:
        if not delivered.done():
            delivered.set_result((time.monotonic(), again))

    clock = SystemClock()
    second = Worker(
        q, {"sleep": record}, clock=clock, rng=random.Random(1), lease_ms=LEASE_MS, poll_s=0.05
    )
    running = asyncio.create_task(second.run())
    try:
        at, again = await asyncio.wait_for(delivered, LEASE_MS / 1000 + 5)
    finally:
        await second.drain(grace_s=1)
        await running
    took = at - killed_at
    assert again.id == job.id
    assert again.attempts == 2
    assert owner != second.id
    # Not before the dead worker's lease (renewed every lease / 3) could have expired...
    assert took >= (LEASE_MS / 1000) * 2 / 3 - 0.1, took
    # ...and no later than the lease plus the margin.
    assert took <= LEASE_MS / 1000 + MARGIN_S, took
    assert (await q.counts()).live == 0

    await ensure_schema(public_db)
    # The killed worker's drain may have read entries it never committed; a live drain
    # takes them over once idle (30 s by default; at once here, the reader is dead).
    drain = JournalDrain(redis, q.journal_key, public_db, consumer="test", clock=clock, stale_ms=0)
    await drain.ensure_group()
    await drain.drain_all()
    query = select(audit_table.c.event, audit_table.c.attempt, audit_table.c.error)
    async with public_db.connect() as conn:
        rows = await conn.execute(
            query.where(audit_table.c.job_id == job.id).order_by(audit_table.c.version)
        )
        events = [tuple(row) for row in rows.all()]
    assert events == [
        ("enqueued", 0, None),
        ("started", 1, None),
        ("failed", 1, f"lease expired (worker {owner})"),
        ("retried", 1, None),
        ("started", 2, None),
        ("succeeded", 2, None),
    ]
