"""Real processes: `lab serve webhook-sink` receives the jobs a `scheduler.worker` posts."""

import asyncio
import signal
import subprocess
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
from redis.asyncio import Redis

from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from labs.testing.pytest_plugin import LabService
from scheduler.queue import RedisQueue

JOBS = 6
TOKEN = "e2e-token"


@pytest.fixture
def sink_url(
    lab_urls: ServerUrls, keys: KeyBuilder, redis: Redis, lab_service: LabService
) -> Iterator[str]:
    """A `lab serve webhook-sink` process on the session's Redis, under the test's prefix."""
    del redis  # requested so that the sink's keys are deleted after it stops
    with lab_service(
        "webhook-sink",
        LAB_ADMIN_TOKEN=TOKEN,
        REDIS_URL=lab_urls.require("redis_url"),
        WEBHOOK_SINK_KEY_PREFIX=keys.prefix,
    ) as sink:
        yield sink.url
    assert sink.returncode in {0, -signal.SIGTERM}, sink.log


async def test_a_worker_process_delivers_every_job_to_the_sink_process_once(
    sink_url: str,
    redis: Redis,
    keys: KeyBuilder,
    start_worker: Callable[..., Awaitable[asyncio.subprocess.Process]],
) -> None:
    """A burst worker's shared HTTP client posts each job once; the sink's ledger agrees."""
    q = RedisQueue(redis, keys)
    for n in range(JOBS):
        await q.enqueue("webhook", {"url": f"{sink_url}/hooks/e2e", "body": {"n": n}})
    worker = await start_worker("--concurrency", "3", "--burst", stderr=subprocess.PIPE)
    _, log = await asyncio.wait_for(worker.communicate(), 60)
    assert worker.returncode == 0, log.decode()
    assert (await q.counts()).live == 0
    async with httpx.AsyncClient(base_url=sink_url) as client:
        received = (await client.get("/v1/received")).json()
    assert (received["deliveries"], received["unique_keys"], received["duplicates"]) == (
        JOBS,
        JOBS,
        0,
    )
    assert received["by_hook"] == {"e2e": JOBS}
