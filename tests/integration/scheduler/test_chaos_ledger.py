"""The chaos handlers write each start to the ledger before working; `drain` empties it."""

import os
import random

import httpx
import pytest
from redis.asyncio import Redis

from labs.clock import ManualClock
from labs.keys import KeyBuilder
from scheduler.domain import Job
from scheduler.experiments import ledger
from scheduler.handlers import HandlerContext, JobFailedError


async def test_each_start_is_recorded_with_its_attempt_outcome_and_process(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Each start is recorded, in order, with its attempt, time, outcome and process."""
    key = keys.key("ledger")
    clock = ManualClock(start=1_000.0)
    # No webhook jobs here: the client never opens a connection.
    handlers = ledger.handlers(HandlerContext(clock, random.Random(1), redis, httpx.AsyncClient()))
    await handlers["noop"](Job(id="a", type="noop", payload={ledger.LEDGER: key}, attempts=1))
    with pytest.raises(JobFailedError):
        await handlers["fail"](Job(id="b", type="fail", payload={ledger.LEDGER: key}, attempts=3))
    always = {ledger.LEDGER: key, "p": 1.0}
    with pytest.raises(JobFailedError):
        await handlers["flaky"](Job(id="c", type="flaky", payload=always, attempts=2))
    executions = await ledger.drain(redis, key)
    assert [(e.job_id, e.attempt, e.fails) for e in executions] == [
        ("a", 1, False),
        ("b", 3, True),
        ("c", 2, True),
    ]
    assert {e.started_at for e in executions} == {1_000.0}
    assert {e.pid for e in executions} == {os.getpid()}
    assert await ledger.drain(redis, key) == []
    assert not await redis.exists(key)
