"""`lab cron` as a user runs it: jobs enqueued per tick, audited, stopped by SIGTERM."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.cli.worker import KEY_PREFIX
from labs.clients import sql_engine
from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from labs.testing.pytest_plugin import SERVER_URL_VARS, LabRunner, unique
from scheduler.queue import RedisQueue
from scheduler.store import audit_table, ensure_schema


@pytest.fixture
async def public_db(lab_urls: ServerUrls) -> AsyncIterator[AsyncEngine]:
    """An engine on the default schema, where `lab cron` writes."""
    engine = sql_engine(lab_urls.require("database_url"), pool_size=1, max_overflow=0)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_lab_cron_enqueues_and_audits_each_tick_until_sigterm(
    lab_urls: ServerUrls, redis: Redis, public_db: AsyncEngine
) -> None:
    """`lab cron` enqueues a job per second-tick, audits it, and exits 0 on SIGTERM."""
    queue_name = unique("q")
    name = unique("c")
    q = RedisQueue(redis, KeyBuilder(KEY_PREFIX), queue_name)
    env = {k: v for k, v in os.environ.items() if k not in SERVER_URL_VARS} | {
        "REDIS_URL": lab_urls.require("redis_url"),
        "DATABASE_URL": lab_urls.require("database_url"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "labs", "cron", "--queue", queue_name),
        *("--schedule", f'{name}|* * * * * *|noop|{{"from": "lab cron"}}'),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        started = time.monotonic()
        while (await q.counts()).ready < 2:
            assert process.returncode is None, "lab cron exited"
            assert time.monotonic() - started < 30, "lab cron enqueued fewer than 2 jobs"
            await asyncio.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        leases = await q.claim("w", 100, 1_000)
        assert {lease.job.payload["from"] for lease in leases} == {"lab cron"}
        ids = [lease.job.id for lease in leases]
        await ensure_schema(public_db)
        async with public_db.connect() as conn:
            query = select(audit_table.c.job_id).where(audit_table.c.event == "enqueued")
            audited = (await conn.execute(query.where(audit_table.c.job_id.in_(ids)))).scalars()
            assert sorted(audited) == sorted(ids)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        leftovers = redis.scan_iter(match=KeyBuilder(KEY_PREFIX).tagged(queue_name, "*"))
        await redis.delete(*[key async for key in leftovers])


def test_lab_cron_with_a_malformed_schedule_says_so_in_one_line(lab: LabRunner) -> None:
    """A malformed schedule is one `lab:` line naming the problem, before any server is sought."""
    result = lab("cron", "--schedule", "tick|* * * 13 *|noop")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "lab: schedule 'tick': invalid cron expression '* * * 13 *': Bad month"
    ]


def test_lab_cron_without_servers_says_so_in_one_line(lab: LabRunner) -> None:
    """With no server recorded or given, `lab cron` explains in one line and exits 1."""
    result = lab("cron", "--schedule", "tick|* * * * *|noop")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "lab: no REDIS_URL and no server recorded: run `lab up` or set REDIS_URL"
    ]
