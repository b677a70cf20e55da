"""Real processes: `lab serve webhook-sink` receives the jobs a `scheduler.worker` posts."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from labs.keys import KeyBuilder
from labs.servers.process import free_port
from labs.settings import ServerUrls
from labs.testing.pytest_plugin import SERVER_URL_VARS
from scheduler.queue import RedisQueue

JOBS = 6
TOKEN = "e2e-token"


@pytest.fixture
def sink_url(
    lab_urls: ServerUrls, keys: KeyBuilder, redis: Redis, cli_state_dir: Path
) -> Iterator[str]:
    """A `lab serve webhook-sink` process on the session's Redis, under the test's prefix."""
    del redis  # requested so that the sink's keys are deleted after it stops
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in SERVER_URL_VARS},
        "LAB_STATE_DIR": str(cli_state_dir),
        "LAB_ADMIN_TOKEN": TOKEN,
        "REDIS_URL": lab_urls.require("redis_url"),
        "WEBHOOK_SINK_KEY_PREFIX": keys.prefix,
    }
    command = [sys.executable, "-m", "labs", "serve", "webhook-sink", "--port", str(port)]
    service = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, service)
        yield url
    finally:
        service.send_signal(signal.SIGTERM)
        _, log = service.communicate(timeout=30)
    assert service.returncode in {0, -signal.SIGTERM}, log


def _wait_until_healthy(url: str, service: subprocess.Popen[str]) -> None:
    for _ in range(300):
        if service.poll() is not None:
            pytest.fail(f"the sink exited with {service.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("the sink never became healthy")


async def test_a_worker_process_delivers_every_job_to_the_sink_process_once(
    sink_url: str, redis: Redis, keys: KeyBuilder, lab_urls: ServerUrls
) -> None:
    """A burst worker's shared HTTP client posts each job once; the sink's ledger agrees."""
    q = RedisQueue(redis, keys)
    for n in range(JOBS):
        await q.enqueue("webhook", {"url": f"{sink_url}/hooks/e2e", "body": {"n": n}})
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scheduler.worker",
        "--redis-url",
        lab_urls.require("redis_url"),
        "--prefix",
        keys.prefix,
        "--concurrency",
        "3",
        "--burst",
        stderr=subprocess.PIPE,
    )
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
