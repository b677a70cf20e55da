"""`lab demo scheduler-breaker`: a webhook host goes down; its breaker halts only its jobs.

Two webhook sinks run in this process, one reached as `localhost` (lane
`webhook@localhost`), the other as `127.0.0.1` (its own lane). The first is put in
outage, and a worker delivers 100 webhook jobs to each. It proves the claim that the
scheduler "applied backpressure and temporarily halted dispatching specific job
types": the healthy host gets all its jobs during the outage; the down host's breaker
opens after a handful of failures, and its jobs then wait parked, spending only the
half-open probes' attempts instead of five each on their way to the DLQ; when the host
recovers, the probes close the breaker and every job is delivered once. Real time: the
cooldown is 1 s, the outage lasts 3 s after the breaker opens.
"""

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from labs.clients import http_client, redis_client
from labs.clock import SystemClock
from labs.demos import DemoContext, DemoFailedError, DemoOutcome
from labs.keys import KeyBuilder
from labs.web.serve import serve_in_thread
from scheduler.domain import BreakerPolicy, BreakerState, DeadJob, LanePolicy, RetryPolicy
from scheduler.handlers import HandlerContext, builtin_handlers
from scheduler.queue import RedisQueue
from scheduler.sink.app import WebhookSinkSettings, create_app
from scheduler.worker import Worker

JOBS = 100
BREAKER = BreakerPolicy(ratio=0.5, min_calls=5, window_ms=10_000, cooldown_ms=1_000, probes=2)
OUTAGE_AFTER_OPEN_S = 3.0
TIMEOUT_S = 60.0
_TOKEN = uuid.uuid4().hex


async def run(context: DemoContext) -> DemoOutcome:
    """Run the outage and recovery; return what each host received and what it cost."""
    prefix = f"demo-breaker-{uuid.uuid4().hex[:8]}"
    redis = redis_client(context.urls.require("redis_url"))
    try:
        with ExitStack() as sinks:
            down, up = (
                sinks.enter_context(serve_in_thread(_sink(context, f"{prefix}-{name}")))
                for name in ("down", "up")
            )
            return await _outage(context, RedisQueue(redis, KeyBuilder(prefix)), down, up)
    finally:
        stale = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if stale:
            await redis.unlink(*stale)
        await redis.aclose()


async def _outage(
    context: DemoContext, queue: RedisQueue, down_url: str, up_url: str
) -> DemoOutcome:
    down_url = down_url.replace("127.0.0.1", "localhost")  # another host: its own lane
    lane = "webhook@localhost"
    await queue.set_policy("webhook", LanePolicy(concurrency=8, breaker=BREAKER))
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {_TOKEN}"}) as admin:
        await _faults(admin, down_url, outage=True)
        for base in (down_url, up_url):
            for n in range(JOBS):
                payload = {"url": f"{base}/hooks/orders", "body": {"n": n}, "timeout_ms": 2_000}
                await queue.enqueue("webhook", payload)
        dead: list[DeadJob] = []
        async with _working(queue, dead):
            context.progress(f"{JOBS} webhook jobs to each host; localhost is down")
            await _until(lambda: _breaker_open(queue, lane), "the down host's breaker to open")
            opened_at, spent_before = time.monotonic(), await _attempts(queue, lane)
            await _until(lambda: _received(admin, up_url, JOBS), "the healthy host's jobs")
            healthy_s = time.monotonic() - opened_at
            context.progress(f"breaker open after {spent_before} attempts; healthy host served")
            await asyncio.sleep(max(0.0, OUTAGE_AFTER_OPEN_S - healthy_s))
            parked, spent_open = (await queue.counts()).parked, await _attempts(queue, lane)
            await _faults(admin, down_url, outage=False)
            context.progress("localhost is back")
            await _until(lambda: _received(admin, down_url, JOBS), "the recovered host's jobs")
        down = (await admin.get(f"{down_url}/v1/received")).json()
        up = (await admin.get(f"{up_url}/v1/received")).json()
    proved = not dead and down["duplicates"] == up["duplicates"] == 0
    summary = (
        f"down host: breaker opened after {spent_before} failed attempts; over a "
        f"{OUTAGE_AFTER_OPEN_S:.0f} s outage its jobs spent {spent_open - spent_before} more "
        f"(half-open probes) with {parked} parked, instead of up to {5 * JOBS} and {JOBS} dead; "
        f"after recovery {down['unique_keys']}/{JOBS} delivered; healthy host "
        f"{up['unique_keys']}/{JOBS} during the outage; {len(dead)} dead, "
        f"{down['duplicates'] + up['duplicates']} duplicates"
    )
    return DemoOutcome(proved=proved, summary=summary)


def _sink(context: DemoContext, key_prefix: str) -> FastAPI:
    settings = WebhookSinkSettings(key_prefix=key_prefix, admin_token=SecretStr(_TOKEN))
    return create_app(settings, urls=context.urls)


@asynccontextmanager
async def _working(queue: RedisQueue, dead: list[DeadJob]) -> AsyncIterator[None]:
    """Run a worker on `queue` for the duration of the block; dead jobs go to `dead`."""
    clock, rng = SystemClock(), random.Random(7)

    async def on_dead(job: DeadJob) -> None:
        dead.append(job)

    async with http_client(max_connections=16) as http:
        worker = Worker(
            queue,
            builtin_handlers(HandlerContext(clock, rng, queue.redis, http)),
            clock=clock,
            rng=rng,
            concurrency=16,
            retry=RetryPolicy(base_ms=50, cap_ms=200),
            poll_s=0.02,
            on_dead=on_dead,
        )
        running = asyncio.create_task(worker.run())
        try:
            yield
        finally:
            await worker.drain(grace_s=5)
            await running


async def _faults(admin: httpx.AsyncClient, base: str, *, outage: bool) -> None:
    answer = await admin.put(f"{base}/v1/faults", json={"outage": outage})
    answer.raise_for_status()


async def _breaker_open(queue: RedisQueue, lane: str) -> bool:
    return (await queue.breaker(lane)).state is not BreakerState.CLOSED


async def _received(admin: httpx.AsyncClient, base: str, jobs: int) -> bool:
    return int((await admin.get(f"{base}/v1/received")).json()["unique_keys"]) >= jobs


async def _attempts(queue: RedisQueue, lane: str) -> int:
    """Return the attempts spent so far by the lane's jobs (all still in Redis)."""
    keys = [key async for key in queue.redis.scan_iter(match=queue.job_key("*"))]
    fields = [await queue.redis.hmget(key, ["lane", "attempts"]) for key in keys]
    return sum(int(spent or 0) for job_lane, spent in fields if job_lane == lane.encode())


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not await check():
        if time.monotonic() > deadline:
            raise DemoFailedError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
