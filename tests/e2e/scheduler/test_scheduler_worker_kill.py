"""A worker process SIGKILLed mid-job: another worker gets the job again within the lease.

Real time by nature: the behaviour under test is a real lease of a killed process
expiring on the Redis clock. The lease is 1 s, so the test takes about 2 s after start-up.
"""

import asyncio
import random
import signal
import subprocess
import sys
import time

from redis.asyncio import Redis

from labs.clock import SystemClock
from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from scheduler.domain import Job
from scheduler.queue import RedisQueue
from scheduler.worker import Worker

LEASE_MS = 1_000
MARGIN_S = 0.5
"""Reclaim polling (50 ms), a Redis round trip or two, and a loaded CI machine."""


async def test_a_killed_workers_job_is_delivered_again_within_the_lease(
    redis: Redis, keys: KeyBuilder, lab_urls: ServerUrls
) -> None:
    """A killed worker's job is delivered again within the lease."""
    q = RedisQueue(redis, keys)
    job = await q.enqueue("sleep", {"ms": 60_000})
    first = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scheduler.worker",
        "--redis-url",
        lab_urls.require("redis_url"),
        "--prefix",
        keys.prefix,
        "--lease-ms",
        str(LEASE_MS),
        "--concurrency",
        "1",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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
    assert await q.counts() == type(await q.counts())(scheduled=0, ready=0, leased=0)
