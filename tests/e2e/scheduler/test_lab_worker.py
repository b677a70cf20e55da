"""`lab worker --burst` as a user runs it: jobs acked in Redis, audited in PostgreSQL."""

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.cli.worker import KEY_PREFIX
from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from labs.testing.pytest_plugin import LabRunner, unique
from scheduler.queue import RedisQueue
from scheduler.store import audit_table, ensure_schema

JOBS = 4


async def test_lab_worker_burst_acks_the_jobs_and_audits_them(
    lab: LabRunner, lab_urls: ServerUrls, redis: Redis, public_db: AsyncEngine
) -> None:
    """`lab worker --burst` runs the queued jobs, acks them, audits them and exits 0."""
    queue_name = unique("q")
    q = RedisQueue(redis, KeyBuilder(KEY_PREFIX), queue_name)
    ids = [(await q.enqueue("noop", {"n": n})).id for n in range(JOBS)]
    try:
        result = lab(
            "worker",
            "--burst",
            "--queue",
            queue_name,
            "--concurrency",
            "2",
            REDIS_URL=lab_urls.require("redis_url"),
            DATABASE_URL=lab_urls.require("database_url"),
        )
        assert result.returncode == 0, result.stderr
        assert (await q.counts()).live == 0
        assert not any([await redis.exists(q.job_key(job_id)) for job_id in ids])
        await ensure_schema(public_db)
        async with public_db.connect() as conn:
            events = (
                await conn.execute(
                    select(audit_table.c.job_id, audit_table.c.event).where(
                        audit_table.c.job_id.in_(ids)
                    )
                )
            ).all()
        assert sorted((e.job_id, e.event) for e in events) == sorted(
            (job_id, event) for job_id in ids for event in ("enqueued", "started", "succeeded")
        )
    finally:
        await redis.delete(KeyBuilder(KEY_PREFIX).tagged(queue_name, "seq"), q.journal_key)


def test_lab_worker_without_servers_says_so_in_one_line(lab: LabRunner) -> None:
    """With no server recorded or given, `lab worker` explains in one line and exits 1."""
    result = lab("worker", "--burst")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "lab: no REDIS_URL and no server recorded: run `lab up` or set REDIS_URL"
    ]


def test_lab_worker_with_an_unreachable_redis_says_so_in_one_line(
    lab: LabRunner, lab_urls: ServerUrls
) -> None:
    """An unreachable Redis is one `lab:` line, not a traceback."""
    result = lab(
        "worker",
        "--burst",
        REDIS_URL="redis://127.0.0.1:1/0",
        DATABASE_URL=lab_urls.require("database_url"),
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("lab: worker cannot reach its servers (ConnectionError")
