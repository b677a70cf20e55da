"""Built-in job types: noop, sleep, fail and flaky, for demos, tests and experiments.

Pattern: handlers are `async (Job) -> None`; raising fails the attempt (the worker
retries with backoff or declares the job dead). A worker gets its handlers from a
factory, `(HandlerContext) -> {type: handler}`: `builtin_handlers` by default, or any
`module:function` given to `python -m scheduler.worker --handlers`. Guarantee: they
read time and chance only through the context's clock and `random.Random`, so a test
decides how long a `sleep` takes and which `flaky` attempts fail. Failure they model:
a job that always fails (`fail`) and one that fails with probability `p` (`flaky`).
Every handler must be safe to run more than once: delivery is at least once.
"""

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis, RedisCluster

from labs.clock import Clock
from scheduler.domain import Job

Handler = Callable[[Job], Awaitable[None]]


@dataclass(frozen=True)
class HandlerContext:
    """What a handler factory may bind its handlers to: the worker's clock, RNG and Redis."""

    clock: Clock
    rng: random.Random
    redis: Redis | RedisCluster


HandlerFactory = Callable[[HandlerContext], dict[str, Handler]]


class JobFailedError(Exception):
    """A handler's deliberate failure."""


def builtin_handlers(context: HandlerContext) -> dict[str, Handler]:
    """Return the built-in handlers by job type, bound to the context's clock and RNG."""
    clock, rng = context.clock, context.rng

    async def noop(job: Job) -> None:
        del job

    async def sleep(job: Job) -> None:
        await clock.sleep(float(job.payload.get("ms", 0)) / 1000)

    async def fail(job: Job) -> None:
        raise JobFailedError(str(job.payload.get("message", "fail")))

    async def flaky(job: Job) -> None:
        if rng.random() < float(job.payload.get("p", 0.5)):
            raise JobFailedError("flaky")

    return {"noop": noop, "sleep": sleep, "fail": fail, "flaky": flaky}
