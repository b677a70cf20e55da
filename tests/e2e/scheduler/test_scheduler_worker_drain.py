"""A worker process drained by SIGTERM: short jobs finish, the rest go back unspent.

It stops claiming at once, lets short jobs finish within the grace, and hands the rest
back without using an attempt. Real time by nature (the grace is a real process's
deadline); about two seconds after start-up.
"""

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from labs.keys import KeyBuilder
from scheduler.queue import RedisQueue

GRACE_S = 1.0


async def test_sigterm_finishes_short_jobs_and_hands_back_the_rest(
    redis: Redis,
    keys: KeyBuilder,
    start_worker: Callable[..., Awaitable[asyncio.subprocess.Process]],
) -> None:
    """Short jobs finish, long ones go back with their attempt, nothing new is claimed."""
    q = RedisQueue(redis, keys, journal=False)
    short = [(await q.enqueue("sleep", {"ms": 300})).id for _ in range(2)]
    long = [(await q.enqueue("sleep", {"ms": 60_000})).id for _ in range(2)]
    worker = await start_worker("--concurrency", "4", "--grace-s", str(GRACE_S))
    try:
        started = time.monotonic()
        while (await q.counts()).leased < len(short + long):
            assert worker.returncode is None, "the worker process exited"
            assert time.monotonic() - started < 30, "the worker never claimed the jobs"
            await asyncio.sleep(0.02)
        worker.send_signal(signal.SIGTERM)
        late = await q.enqueue("noop")  # enqueued after the signal: must not be claimed
        assert await asyncio.wait_for(worker.wait(), GRACE_S + 10) == 0
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    assert not any([await redis.exists(q.job_key(job_id)) for job_id in short])  # acked
    for job_id in [*long, late.id]:
        assert await redis.hmget(q.job_key(job_id), ["state", "attempts"]) == [b"queued", b"0"]
    counts = await q.counts()
    assert (counts.ready, counts.leased) == (3, 0)
