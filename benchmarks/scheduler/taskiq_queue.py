"""taskiq with taskiq-redis as a benchmarked system: `RedisStreamBroker` and `taskiq worker`.

The broker is taskiq-redis' `RedisStreamBroker`, the one its README recommends for
reliability (a Redis stream and a consumer group: messages are acknowledged, so a
killed worker's are re-delivered, as with ours); its workers block on `XREADGROUP`
(`xread_block`, default 2 s: no poll interval to set); its client is redis-py (hiredis
is installed, so used). Workers: `python -m taskiq worker
benchmarks.scheduler.taskiq_queue:broker --workers K --max-async-tasks C`. The module
builds `broker` only when the CLI asks for it (module `__getattr__`), from the run's
environment. The enqueuer's `startup()` declares the consumer group before the first
job, so jobs enqueued before the workers start are delivered.
"""

import functools
import os
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from taskiq import AsyncTaskiqDecoratedTask
from taskiq_redis import RedisStreamBroker

from benchmarks.scheduler import recorder
from benchmarks.scheduler.system import ENQUEUE_IN_FLIGHT, Enqueuer, Setup, concurrently, python

QUEUE_ENV = "BENCH_TASKIQ_QUEUE"
TASK_NAME = "bench_noop"


async def noop(i: int) -> None:
    """The no-op task: record the start."""
    recorder.started(i)


NoopTask = AsyncTaskiqDecoratedTask[[int], Coroutine[Any, Any, None]]


def make_broker(redis_url: str, queue: str) -> tuple[RedisStreamBroker, NoopTask]:
    """Return a stream broker on `queue` with the no-op task registered."""
    broker = RedisStreamBroker(redis_url, queue_name=queue)
    return broker, broker.register_task(noop, task_name=TASK_NAME)


@functools.cache
def _broker_from_environment() -> RedisStreamBroker:
    broker, _ = make_broker(os.environ[recorder.REDIS_URL_ENV], os.environ[QUEUE_ENV])
    return broker


def __getattr__(name: str) -> Any:
    """Build `broker` for `taskiq worker` from the worker's environment."""
    if name != "broker":
        raise AttributeError(name)
    return _broker_from_environment()


@dataclass(frozen=True)
class _TaskiqEnqueuer:
    task: NoopTask

    async def enqueue_one(self, index: int) -> None:
        await self.task.kiq(index)

    async def enqueue_many(self, indexes: Sequence[int]) -> None:
        await concurrently(self.enqueue_one, indexes, ENQUEUE_IN_FLIGHT)


@dataclass(frozen=True)
class Taskiq:
    """taskiq's worker on taskiq-redis' stream broker."""

    name: str = "taskiq-redis"
    summary: str = (
        "taskiq + taskiq-redis `RedisStreamBroker` (stream, consumer group, acks), "
        "`taskiq worker` CLI with --workers"
    )
    enqueue_api: str = f"task.kiq, concurrent loop, {ENQUEUE_IN_FLIGHT} in flight"

    def knobs(self, setup: Setup) -> dict[str, Any]:
        """Processes and async tasks per process; reads block (`xread_block`, default)."""
        return {
            "--workers": setup.workers,
            "--max-async-tasks": setup.concurrency,
            "xread_block ms (default)": 2000,
            "xread_count (default)": 100,
        }

    @asynccontextmanager
    async def enqueuer(self, setup: Setup) -> AsyncIterator[Enqueuer]:
        """Start a broker on the run's stream (declaring its consumer group)."""
        broker, task = make_broker(setup.redis_url, setup.namespace)
        await broker.startup()
        try:
            yield _TaskiqEnqueuer(task)
        finally:
            await broker.shutdown()

    def worker_commands(self, setup: Setup) -> list[list[str]]:
        """One `taskiq worker` command that runs every worker process."""
        return [
            python(
                "-m",
                "taskiq",
                "worker",
                f"{__name__}:broker",
                "--workers",
                str(setup.workers),
                "--max-async-tasks",
                str(setup.concurrency),
                "--log-level",
                "WARNING",
            )
        ]

    def environment(self, setup: Setup) -> dict[str, str]:
        """The stream the worker's broker reads."""
        return {QUEUE_ENV: setup.namespace}

    def key_patterns(self, setup: Setup) -> list[str]:
        """The stream, named after the namespace."""
        return [f"{setup.namespace}*"]

    async def cleanup(self, setup: Setup) -> None:
        """Nothing outside Redis."""
        del setup
