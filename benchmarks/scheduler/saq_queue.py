"""SAQ as a benchmarked system: `Queue.enqueue` and the `saq` worker CLI.

SAQ keeps queued job ids in a Redis list and each of a worker's `concurrency` loops
waits on it with `BLMOVE` (blocking: no poll interval to set); its client is redis-py
(hiredis is installed, so used). Workers: `python -m saq
benchmarks.scheduler.saq_queue.settings --workers K` (SAQ forks the extra processes
itself). `settings` is a callable, so the worker reads the run's Redis URL and queue
name from its environment when it starts, not at import.
"""

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from saq import Queue

from benchmarks.scheduler import recorder
from benchmarks.scheduler.system import ENQUEUE_IN_FLIGHT, Enqueuer, Setup, concurrently, python

QUEUE_ENV = "BENCH_SAQ_QUEUE"
CONCURRENCY_ENV = "BENCH_CONCURRENCY"


async def noop(ctx: dict[str, Any], *, i: int) -> None:
    """The no-op task: record the start."""
    del ctx
    recorder.started(i)


def settings() -> dict[str, Any]:
    """The worker's settings (SAQ calls this in each worker process)."""
    queue = Queue.from_url(os.environ[recorder.REDIS_URL_ENV], name=os.environ[QUEUE_ENV])
    return {"queue": queue, "functions": [noop], "concurrency": int(os.environ[CONCURRENCY_ENV])}


@dataclass(frozen=True)
class _SaqEnqueuer:
    queue: Queue

    async def enqueue_one(self, index: int) -> None:
        await self.queue.enqueue("noop", i=index)

    async def enqueue_many(self, indexes: Sequence[int]) -> None:
        await concurrently(self.enqueue_one, indexes, ENQUEUE_IN_FLIGHT)


@dataclass(frozen=True)
class Saq:
    """SAQ's Redis queue and worker."""

    name: str = "saq"
    summary: str = "SAQ `Queue.from_url` (Redis list + BLMOVE), `saq` worker CLI with --workers"
    enqueue_api: str = f"Queue.enqueue, concurrent loop, {ENQUEUE_IN_FLIGHT} in flight"

    def knobs(self, setup: Setup) -> dict[str, Any]:
        """Concurrency per process; dequeue blocks (BLMOVE), so there is no poll interval."""
        return {
            "--workers": setup.workers,
            "concurrency": setup.concurrency,
            "dequeue_timeout (default: block)": 0,
        }

    @asynccontextmanager
    async def enqueuer(self, setup: Setup) -> AsyncIterator[Enqueuer]:
        """Open the run's queue."""
        queue = Queue.from_url(setup.redis_url, name=setup.namespace)
        await queue.connect()
        try:
            yield _SaqEnqueuer(queue)
        finally:
            await queue.disconnect()

    def worker_commands(self, setup: Setup) -> list[list[str]]:
        """One `saq` command that runs every worker process."""
        return [python("-m", "saq", f"{__name__}.settings", "--workers", str(setup.workers))]

    def environment(self, setup: Setup) -> dict[str, str]:
        """The queue name and concurrency the worker's `settings` reads."""
        return {QUEUE_ENV: setup.namespace, CONCURRENCY_ENV: str(setup.concurrency)}

    def key_patterns(self, setup: Setup) -> list[str]:
        """SAQ's keys: `saq:<queue>:*` and the jobs `saq:job:<queue>:*`."""
        return [f"saq:{setup.namespace}:*", f"saq:job:{setup.namespace}:*"]

    async def cleanup(self, setup: Setup) -> None:
        """Nothing outside Redis."""
        del setup
