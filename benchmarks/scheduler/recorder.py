"""When each benchmark job started, recorded the same way inside every system's workers.

Pattern: every system's no-op task calls `started(index)` first thing; that stamps
`time.time_ns()` into an in-process buffer, and a background task (started lazily on
the worker's own event loop) pushes the buffer to one Redis list, `BENCH_STARTS_KEY`,
as `index:ns` strings in a single `RPUSH`, a couple of milliseconds later. So the
stamp is taken inside the job, before the push, and the push is batched and off the
job's path. The enqueuer and every worker run on one machine, so `time.time_ns()` is
one clock for all of them: an enqueue stamp and a start stamp can be subtracted.
Guarantee: every call is pushed unless the process dies within the batching delay;
the harness reads the list only after it has seen every job it waits for, so a lost
or duplicated start is counted, never hidden. Failure it handles: none — a Redis error
kills the flusher and the harness reports the missing jobs.
"""

import asyncio
import os
import time
from collections.abc import Sequence

from redis.asyncio import Redis

from labs.clients import redis_client

STARTS_KEY_ENV = "BENCH_STARTS_KEY"
REDIS_URL_ENV = "BENCH_REDIS_URL"
_BATCH_DELAY_S = 0.002


class StartRecorder:
    """Buffers start stamps and pushes them to one Redis list in batches."""

    def __init__(self, redis: Redis, key: str) -> None:
        """Push to the list `key` on `redis`."""
        self._redis = redis
        self._key = key
        self._buffer: list[str] = []
        self._pending = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    def started(self, index: int) -> None:
        """Stamp job `index` as started now; the push follows within a few ms."""
        self._buffer.append(f"{index}:{time.time_ns()}")
        self._pending.set()
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await self._pending.wait()
            await asyncio.sleep(_BATCH_DELAY_S)
            self._pending.clear()
            batch, self._buffer = self._buffer, []
            await self._redis.rpush(self._key, *batch)


_recorder: StartRecorder | None = None


def started(index: int) -> None:
    """Record that job `index` started, into the list named by the worker's environment."""
    global _recorder  # noqa: PLW0603 - one recorder per worker process, made on first use
    if _recorder is None:
        _recorder = StartRecorder(
            redis_client(os.environ[REDIS_URL_ENV]), os.environ[STARTS_KEY_ENV]
        )
    _recorder.started(index)


def parse_starts(entries: Sequence[bytes | str]) -> dict[int, list[int]]:
    """Return each job index's start stamps (ns) from the list's `index:ns` entries."""
    starts: dict[int, list[int]] = {}
    for entry in entries:
        text = entry.decode() if isinstance(entry, bytes) else entry
        index, stamp = text.split(":")
        starts.setdefault(int(index), []).append(int(stamp))
    return starts
