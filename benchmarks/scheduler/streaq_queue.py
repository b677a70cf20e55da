"""streaq as a benchmarked system: `Worker.enqueue_many` and `python -m streaq run`.

streaq keeps tasks in Redis streams read by a consumer group with a blocking
`XREADGROUP` (block = `idle_timeout`: no poll interval to set) and prefetches up to
`2 x concurrency` tasks; its client is coredis, not redis-py. It has a batch API,
`Worker.enqueue_many` (one pipeline), which the enqueue measurement uses. The task is
registered with `silent=True`: streaq logs every task at INFO otherwise, and no other
system here writes a log line per job. Workers: `python -m streaq run
benchmarks.scheduler.streaq_queue:worker --workers K`; the module builds `worker` only
when the CLI asks for it (module `__getattr__`), from the run's environment.
"""

import functools
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from streaq import Worker

from benchmarks.scheduler import recorder
from benchmarks.scheduler.system import Enqueuer, Setup, python

QUEUE_ENV = "BENCH_STREAQ_QUEUE"
CONCURRENCY_ENV = "BENCH_CONCURRENCY"
TASK_NAME = "bench_noop"


async def noop(i: int) -> None:
    """The no-op task: record the start."""
    recorder.started(i)


def make_worker(redis_url: str, queue: str, concurrency: int) -> Worker[Any]:
    """Return a streaq worker on `queue` with the no-op task registered."""
    worker: Worker[Any] = Worker(redis_url=redis_url, queue_name=queue, concurrency=concurrency)
    worker.task(name=TASK_NAME, silent=True)(noop)
    return worker


@functools.cache
def _worker_from_environment() -> Worker[Any]:
    return make_worker(
        os.environ[recorder.REDIS_URL_ENV],
        os.environ[QUEUE_ENV],
        int(os.environ[CONCURRENCY_ENV]),
    )


def __getattr__(name: str) -> Any:
    """Build `worker` for `streaq run` from the worker's environment."""
    if name != "worker":
        raise AttributeError(name)
    return _worker_from_environment()


@dataclass(frozen=True)
class _StreaqEnqueuer:
    worker: Worker[Any]

    async def enqueue_one(self, index: int) -> None:
        _ = await self.worker.registry[TASK_NAME].enqueue(index)  # the Task, awaited: sent

    async def enqueue_many(self, indexes: Sequence[int]) -> None:
        task = self.worker.registry[TASK_NAME]
        await self.worker.enqueue_many([task.enqueue(index) for index in indexes])


@dataclass(frozen=True)
class Streaq:
    """streaq's worker and its batch enqueue."""

    name: str = "streaq"
    summary: str = (
        "streaq `Worker` (Redis streams, consumer group, coredis), `streaq run` CLI with --workers"
    )
    enqueue_api: str = "Worker.enqueue_many (batch: one pipeline per 1,000 jobs)"

    def knobs(self, setup: Setup) -> dict[str, Any]:
        """Processes and concurrency per process; prefetch and blocking are its defaults."""
        return {
            "--workers": setup.workers,
            "concurrency": setup.concurrency,
            "prefetch (default: concurrency)": setup.concurrency,
            "idle_timeout s (default, also the XREADGROUP block)": 60,
            "task silent": True,
        }

    @asynccontextmanager
    async def enqueuer(self, setup: Setup) -> AsyncIterator[Enqueuer]:
        """Open a streaq worker object on the run's queue, for enqueueing only."""
        worker = make_worker(setup.redis_url, setup.namespace, setup.concurrency)
        async with worker:
            yield _StreaqEnqueuer(worker)

    def worker_commands(self, setup: Setup) -> list[list[str]]:
        """One `streaq run` command that runs every worker process."""
        return [
            python("-m", "streaq", "run", f"{__name__}:worker", "--workers", str(setup.workers))
        ]

    def environment(self, setup: Setup) -> dict[str, str]:
        """The queue and the concurrency the worker is built with."""
        return {QUEUE_ENV: setup.namespace, CONCURRENCY_ENV: str(setup.concurrency)}

    def key_patterns(self, setup: Setup) -> list[str]:
        """Streaq's keys: `streaq:<queue>*`."""
        return [f"streaq:{setup.namespace}*"]

    async def cleanup(self, setup: Setup) -> None:
        """Nothing outside Redis."""
        del setup
