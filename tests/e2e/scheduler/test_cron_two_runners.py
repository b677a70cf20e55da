"""Two real `python -m scheduler.cron` processes race for every tick; one is SIGKILLed.

Real time by nature: the race under test is two processes waking at the same wall-clock
second and calling Redis. The schedule ticks every second (a leading seconds field),
so the test takes a few seconds after start-up. Both runners log each tick they try
(`--log-level DEBUG`): fired, or already fired by the other.
"""

import asyncio
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from redis.asyncio import Redis

from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from labs.testing.waiting import until
from scheduler.cron.schedule import parse_spec
from scheduler.queue import RedisQueue

SPEC = "every|* * * * * *|noop"
SCHEDULE = parse_spec(SPEC)
SECOND = 1_000
TRIED = re.compile(r"cron every: (?:fired tick (?P<fired>\d+)|tick (?P<lost>\d+) already fired)")
START_S = 30.0
"""Bounds the start-up of a Python process on a loaded machine; never waited out."""


@dataclass
class Runner:
    """A runner process and the ticks it has tried, as it logs them."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    fired: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)

    @property
    def tried(self) -> list[int]:
        """Every tick this runner tried, won or lost."""
        return sorted(self.fired + self.lost)

    async def read(self) -> None:
        """Collect the log until the process exits."""
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode()
            self.lines.append(line)
            if match := TRIED.search(line):
                if match["fired"]:
                    self.fired.append(int(match["fired"]))
                else:
                    self.lost.append(int(match["lost"]))

    def logged(self, text: str) -> bool:
        """Whether a line containing `text` was logged."""
        return any(text in line for line in self.lines)


@asynccontextmanager
async def runner(redis_url: str, keys: KeyBuilder) -> AsyncIterator[Runner]:
    """Start a runner process on the test's keys; kill it at the end if it still runs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scheduler.cron",
        "--redis-url",
        redis_url,
        "--prefix",
        keys.prefix,
        "--queue",
        "q",
        "--schedule",
        SPEC,
        "--log-level",
        "DEBUG",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    started = Runner(process)
    reader = asyncio.create_task(started.read())
    try:
        yield started
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), 10)
        await asyncio.wait_for(reader, 10)


async def test_two_runners_enqueue_each_tick_exactly_once_and_survive_a_kill(
    redis: Redis, keys: KeyBuilder, lab_urls: ServerUrls
) -> None:
    """Both runners try every tick, one wins each; after one is killed no tick is lost."""
    redis_url = lab_urls.require("redis_url")
    q = RedisQueue(redis, keys, "q")
    async with runner(redis_url, keys) as a, runner(redis_url, keys) as b:
        await until(lambda: a.logged("started") and b.logged("started"), "both started", START_S)
        await until(lambda: len(set(a.tried) & set(b.tried)) >= 2, "two ticks raced", 10)
        a.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(a.process.wait(), 10)
        killed_after = max(a.tried)
        await until(lambda: len([t for t in b.fired if t > killed_after]) >= 2, "b fires on", 10)
        b.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(b.process.wait(), 10) == 0
    assert b.logged("cron runner stopped")

    raced = set(a.tried) & set(b.tried)
    fired = Counter(a.fired + b.fired)
    # Exactly once by the runners' own account: each raced tick has one winner, one loser...
    assert all(fired[tick] == 1 for tick in raced), (a.lines, b.lines)
    assert max(fired.values()) == 1
    # ...and by Redis': every tick from the first to the last has its job, each added once
    # (an enqueue into the ready set increments the sequence; a second one would again).
    ticks = range(min(fired), max(fired) + SECOND, SECOND)
    missing = [t for t in ticks if not await redis.exists(q.job_key(SCHEDULE.job_id(t)))]
    assert missing == []
    counts = await q.counts()
    assert counts.ready + counts.scheduled == len(ticks)
    assert int(await redis.get(keys.tagged("q", "seq")) or 0) == counts.ready
