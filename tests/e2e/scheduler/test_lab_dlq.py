"""`lab dlq` as a user runs it: list, show, requeue and purge on the real servers."""

import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.cli.worker import KEY_PREFIX
from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from labs.testing.pytest_plugin import LabRunner, unique
from scheduler import dlq
from scheduler.domain import Job
from scheduler.queue import RedisQueue
from scheduler.store import ensure_schema


async def test_lab_dlq_lists_shows_requeues_and_purges(
    lab: LabRunner,
    lab_urls: ServerUrls,
    redis: Redis,
    public_db: AsyncEngine,
    bury: Callable[[AsyncEngine, Job, str, int], Awaitable[None]],
) -> None:
    """Each subcommand does its one thing; purge needs --yes; mistakes are one line."""
    job_type, queue_name = unique("mail-"), unique("q")
    env = {
        "REDIS_URL": lab_urls.require("redis_url"),
        "DATABASE_URL": lab_urls.require("database_url"),
    }
    await ensure_schema(public_db)
    first, second = unique("job-"), unique("job-")
    for job_id in (first, second):
        dead = Job(id=job_id, type=job_type, attempts=5)
        await bury(public_db, dead, "SMTP 550", round(time.time() * 1000))
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
        counts = await queue.counts()
        assert (counts.live, counts.ready) == (1, 1)

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
