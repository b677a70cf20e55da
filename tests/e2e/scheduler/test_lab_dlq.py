"""`lab dlq` as a user runs it: list, show, requeue and purge on the real servers."""

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.cli.worker import KEY_PREFIX
from labs.clients import sql_engine
from labs.clock import SystemClock
from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from labs.testing.pytest_plugin import LabRunner, unique
from scheduler import dlq
from scheduler.domain import DeadJob, Job
from scheduler.queue import Counts, RedisQueue
from scheduler.store import AuditWriter, ensure_schema


@pytest.fixture
async def public_db(lab_urls: ServerUrls) -> AsyncIterator[AsyncEngine]:
    """An engine on the default schema, where `lab dlq` works."""
    engine = sql_engine(lab_urls.require("database_url"), pool_size=1, max_overflow=0)
    await ensure_schema(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_lab_dlq_lists_shows_requeues_and_purges(
    lab: LabRunner, lab_urls: ServerUrls, redis: Redis, public_db: AsyncEngine
) -> None:
    """Each subcommand does its one thing; purge needs --yes; mistakes are one line."""
    job_type, queue_name = unique("mail-"), unique("q")
    env = {
        "REDIS_URL": lab_urls.require("redis_url"),
        "DATABASE_URL": lab_urls.require("database_url"),
    }
    audit = AuditWriter(public_db, clock=SystemClock())
    first, second = unique("job-"), unique("job-")
    for job_id in (first, second):
        await audit.bury(DeadJob(Job(id=job_id, type=job_type, attempts=5), "SMTP 550"))
    queue = RedisQueue(redis, KeyBuilder(KEY_PREFIX), queue_name)
    try:
        listed = lab("dlq", "list", "--type", job_type, **env)
        assert listed.returncode == 0, listed.stderr
        assert {line.split()[0] for line in listed.stdout.splitlines()} == {first, second}

        shown = lab("dlq", "show", first, **env)
        assert "error: SMTP 550" in shown.stdout
        assert "dead  attempt 5" in shown.stdout

        refused = lab("dlq", "purge", "--type", job_type, **env)
        assert refused.returncode == 1
        assert (
            refused.stderr.strip() == "lab: purge deletes dead jobs for good: add --yes to confirm"
        )

        requeued = lab("dlq", "requeue", first, "--queue", queue_name, **env)
        assert requeued.stdout.strip() == "requeued 1", requeued.stderr
        assert await queue.counts() == Counts(scheduled=0, ready=1, leased=0)

        purged = lab("dlq", "purge", "--type", job_type, "--yes", **env)
        assert purged.stdout.strip() == "purged 1", purged.stderr
        empty = lab("dlq", "list", "--type", job_type, **env)
        assert (empty.stdout, empty.stderr.strip()) == ("", "no dead jobs")

        nothing = lab("dlq", "requeue", **env)
        assert nothing.returncode == 1
        assert nothing.stderr.startswith("lab: select dead jobs by ids")
        assert len(nothing.stderr.splitlines()) == 1
    finally:
        await dlq.purge(public_db, dlq.Selection(job_type=job_type))
        stale = [key async for key in redis.scan_iter(match=f"{KEY_PREFIX}:{{{queue_name}}}:*")]
        if stale:
            await redis.unlink(*stale)


def test_lab_dlq_without_servers_is_one_line(lab: LabRunner) -> None:
    """With no servers recorded and none given, `lab dlq list` says how to start them."""
    result = lab("dlq", "list")
    assert result.returncode == 1
    assert result.stderr.startswith("lab: no DATABASE_URL and no server recorded: run `lab up`")
    assert len(result.stderr.splitlines()) == 1
