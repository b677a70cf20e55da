"""The protocol every benchmarked system implements, and what they share.

A system is a queue library (ours or a peer) behind one small surface: an enqueuer
opened on the run's Redis that can enqueue one no-op job or a batch of them, the
commands that start its worker processes, and the Redis keys it leaves behind. Every
system's no-op task takes one integer, the job's index, and calls
`benchmarks.scheduler.recorder.started(index)` first, so start times are recorded the
same way everywhere. Equal setup: the same Redis, the same number of worker processes
(`workers`), the same jobs in flight per process (`concurrency`), the same job count;
each system otherwise keeps its defaults, and the knobs it was given are reported.
"""

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

ENQUEUE_IN_FLIGHT = 64
"""Enqueue calls in flight at once where a system has no batch API."""


@dataclass(frozen=True)
class Setup:
    """What every system gets in a run: the servers, its own names, the process shape."""

    redis_url: str
    database_url: str | None
    namespace: str
    """Unique to this system in this run: its queue name and key prefix."""
    workers: int
    concurrency: int


class Enqueuer(Protocol):
    """An open connection to a system's queue that enqueues no-op jobs by index."""

    async def enqueue_one(self, index: int) -> None:
        """Enqueue the no-op job `index` for immediate execution."""
        ...

    async def enqueue_many(self, indexes: Sequence[int]) -> None:
        """Enqueue the no-op jobs `indexes` the fastest documented way."""
        ...


class System(Protocol):
    """A queue library under test."""

    @property
    def name(self) -> str:
        """The system's name in tables and plots."""
        ...

    @property
    def summary(self) -> str:
        """What runs: the library, its broker or queue class, its worker command."""
        ...

    @property
    def enqueue_api(self) -> str:
        """How `enqueue_many` enqueues: a batch API, or a concurrent loop."""
        ...

    def knobs(self, setup: Setup) -> dict[str, Any]:
        """The settings given to the system (concurrency, polling, its defaults named)."""
        ...

    def enqueuer(self, setup: Setup) -> AbstractAsyncContextManager[Enqueuer]:
        """Open the system's queue on `setup.redis_url` for enqueueing."""
        ...

    def worker_commands(self, setup: Setup) -> list[list[str]]:
        """The commands that together run `setup.workers` worker processes."""
        ...

    def environment(self, setup: Setup) -> dict[str, str]:
        """What the worker processes read from their environment besides the recorder's."""
        ...

    def key_patterns(self, setup: Setup) -> list[str]:
        """Every Redis key this system may write in a run (deleted afterwards)."""
        ...

    async def cleanup(self, setup: Setup) -> None:
        """Delete what the run wrote outside Redis (nothing, for most systems)."""
        ...


def python(*args: str) -> list[str]:
    """Return a command run by this interpreter."""
    return [sys.executable, *args]


async def concurrently(
    enqueue: Callable[[int], Awaitable[Any]], indexes: Sequence[int], in_flight: int
) -> None:
    """Call `enqueue(index)` for every index with at most `in_flight` calls at once."""
    iterator = iter(indexes)

    async def lane() -> None:
        for index in iterator:
            await enqueue(index)

    await asyncio.gather(*(lane() for _ in range(min(in_flight, len(indexes)))))
