"""The chaos jobs and their execution ledger: every handler start, recorded in Redis.

Pattern: an independent witness. The chaos handlers (`handlers`, given to workers as
`--handlers scheduler.experiments.ledger:handlers`) first append one entry to a Redis
list named in the job's payload — job id, attempt, start time, whether this attempt
will fail, and the worker's process id — and only then do their work: `noop`, `sleep` (the payload's
`ms`), `flaky` (fails with the payload's probability `p`, drawn from the worker's
RNG) or `fail` (always). The experiment drains the list as it goes (`drain`), so the
ledger in Redis stays small however long the run, and deletes it at the end.
Guarantee: an execution that started is in the ledger before any of its effects, so
the checker counts executions without trusting the queue or the audit trail it
checks. Failure it handles: a worker SIGKILLed mid-job has already written its entry
(the start is one `RPUSH` round trip before the work).
"""

import os

from redis.asyncio import Redis

from scheduler.domain import Job
from scheduler.experiments.checker import Execution
from scheduler.handlers import Handler, HandlerContext, JobFailedError

LEDGER = "ledger"
"""The payload field naming the Redis list that records the job's executions."""
DRAIN_BATCH = 10_000


def handlers(context: HandlerContext) -> dict[str, Handler]:
    """Return the chaos handlers by job type, recording each start in the job's ledger."""
    clock, rng, redis = context.clock, context.rng, context.redis

    async def start(job: Job, *, fails: bool) -> None:
        entry = f"{job.id} {job.attempts} {clock.time():.6f} {int(fails)} {os.getpid()}"
        await redis.rpush(str(job.payload[LEDGER]), entry)

    async def noop(job: Job) -> None:
        await start(job, fails=False)

    async def sleep(job: Job) -> None:
        await start(job, fails=False)
        await clock.sleep(float(job.payload["ms"]) / 1000)

    async def flaky(job: Job) -> None:
        fails = rng.random() < float(job.payload["p"])
        await start(job, fails=fails)
        if fails:
            raise JobFailedError("flaky")

    async def fail(job: Job) -> None:
        await start(job, fails=True)
        raise JobFailedError("the downstream fails for good")

    return {"noop": noop, "sleep": sleep, "flaky": flaky, "fail": fail}


def parse(entry: bytes | str) -> Execution:
    """Return the execution an entry of the ledger records."""
    text = entry.decode() if isinstance(entry, bytes) else entry
    job_id, attempt, started_at, fails, pid = text.split(" ")
    return Execution(
        job_id=job_id,
        attempt=int(attempt),
        started_at=float(started_at),
        fails=fails == "1",
        pid=int(pid),
    )


async def drain(redis: Redis, key: str) -> list[Execution]:
    """Pop every entry the ledger holds now, oldest first."""
    executions: list[Execution] = []
    while True:
        batch: list[bytes] | None = await redis.lpop(key, DRAIN_BATCH)  # type: ignore[assignment]
        if not batch:
            return executions
        executions += [parse(entry) for entry in batch]
