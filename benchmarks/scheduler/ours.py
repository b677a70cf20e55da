"""Our scheduler as a benchmarked system: `RedisQueue.enqueue` and `python -m scheduler.worker`.

Only public surfaces: jobs go in through `RedisQueue.enqueue` (no batch API: a
concurrent loop), and `setup.workers` worker processes run the worker CLI with
`--handlers benchmarks.scheduler.ours:handlers`, whose one job type records its start
like every peer's task. Two variants: with `--database-url` (the PostgreSQL audit log
and DLQ on, the configuration the goals are judged with) and without it, so the
audit's cost shows. Job ids carry the run's namespace, so the audit rows the run
wrote can be deleted afterwards.
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from benchmarks.scheduler import recorder
from benchmarks.scheduler.system import ENQUEUE_IN_FLIGHT, Enqueuer, Setup, concurrently, python
from labs.clients import redis_client, sql_engine
from labs.keys import KeyBuilder
from scheduler.domain import Job
from scheduler.handlers import Handler, HandlerContext
from scheduler.queue import RedisQueue

JOB_TYPE = "bench-noop"
QUEUE = "bench"
_WORKER_DEFAULT_POLL_S = 0.1
"""`Worker(poll_s=...)`'s default; the worker CLI does not expose it."""
_AUDIT_TABLES = (
    ("scheduler_audit", "job_id"),
    ("scheduler_jobs", "id"),
    ("scheduler_dead", "job_id"),
)


def handlers(context: HandlerContext) -> dict[str, Handler]:
    """The worker's handler factory: one no-op job type that records its start."""
    del context

    async def noop(job: Job) -> None:
        recorder.started(int(job.payload["i"]))

    return {JOB_TYPE: noop}


def job_id(setup: Setup, index: int) -> str:
    """Return the id of job `index`: the namespace first, so the audit rows can be found."""
    return f"{setup.namespace}-{index}"


@dataclass(frozen=True)
class _OurEnqueuer:
    queue: RedisQueue
    setup: Setup

    async def enqueue_one(self, index: int) -> None:
        await self.queue.enqueue(JOB_TYPE, {"i": index}, job_id=job_id(self.setup, index))

    async def enqueue_many(self, indexes: Sequence[int]) -> None:
        await concurrently(self.enqueue_one, indexes, ENQUEUE_IN_FLIGHT)


@dataclass(frozen=True)
class OurScheduler:
    """`scheduler.queue.RedisQueue` with `scheduler.worker` processes, audit on or off."""

    audit: bool

    @property
    def name(self) -> str:
        """`scheduler+audit` or `scheduler`."""
        return "scheduler+audit" if self.audit else "scheduler"

    @property
    def summary(self) -> str:
        """The queue and the worker command."""
        audit = "audit log in PostgreSQL" if self.audit else "no audit (no --database-url)"
        return f"RedisQueue.enqueue + `python -m scheduler.worker` processes, {audit}"

    @property
    def enqueue_api(self) -> str:
        """No batch API: a concurrent loop."""
        return f"RedisQueue.enqueue, concurrent loop, {ENQUEUE_IN_FLIGHT} in flight"

    def knobs(self, setup: Setup) -> dict[str, Any]:
        """Concurrency per process; the poll interval is the worker's default."""
        return {
            "worker processes": setup.workers,
            "--concurrency": setup.concurrency,
            "poll_s (default, no CLI flag)": _WORKER_DEFAULT_POLL_S,
            "idle wake-up": "BLPOP on the queue's token list",
            "audit": self.audit,
        }

    @asynccontextmanager
    async def enqueuer(self, setup: Setup) -> AsyncIterator[Enqueuer]:
        """Open a `RedisQueue` on the run's Redis, under the system's own prefix.

        The loaded phase sends each enqueue on its own; when the machine stalls they pile
        up, so a call waits for one of the pool's connections rather than failing.
        """
        client = redis_client(setup.redis_url, wait_for_connection=True, max_connections=64)
        try:
            yield _OurEnqueuer(RedisQueue(client, KeyBuilder(setup.namespace), QUEUE), setup)
        finally:
            await client.aclose()

    def worker_commands(self, setup: Setup) -> list[list[str]]:
        """One `scheduler.worker` process per worker, with the audit when it is on."""
        command = python(
            "-m",
            "scheduler.worker",
            "--redis-url",
            setup.redis_url,
            "--prefix",
            setup.namespace,
            "--queue",
            QUEUE,
            "--concurrency",
            str(setup.concurrency),
            "--handlers",
            f"{__name__}:handlers",
        )
        if self.audit:
            if setup.database_url is None:
                raise ValueError("the audit needs a database URL")
            command += ["--database-url", setup.database_url]
        return [command] * setup.workers

    def environment(self, setup: Setup) -> dict[str, str]:
        """Nothing: the worker CLI takes everything as flags."""
        del setup
        return {}

    def key_patterns(self, setup: Setup) -> list[str]:
        """Every key under the system's prefix."""
        return [f"{setup.namespace}:*"]

    async def cleanup(self, setup: Setup) -> None:
        """Delete the audit rows and job states the run's workers wrote to PostgreSQL."""
        if not self.audit or setup.database_url is None:
            return
        engine = sql_engine(setup.database_url)
        pattern = f"{setup.namespace}-%"
        try:
            async with engine.begin() as conn:
                for table, column in _AUDIT_TABLES:
                    await conn.execute(
                        text(f"DELETE FROM {table} WHERE {column} LIKE :pattern"),  # noqa: S608
                        {"pattern": pattern},
                    )
        finally:
            await engine.dispose()
