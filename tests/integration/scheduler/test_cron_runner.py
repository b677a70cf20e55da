"""Cron runners on the real Redis, on a manual clock: each tick enqueued once, missed ticks."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.clients import redis_client
from labs.clock import ManualClock
from labs.keys import KeyBuilder
from labs.testing.pytest_plugin import DisposableRedis
from labs.testing.waiting import until
from scheduler.cron.runner import CronRunner
from scheduler.cron.schedule import Schedule
from scheduler.queue import Fence, RedisQueue
from scheduler.store import JournalDrain, audit_table, ensure_schema

T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()) * 1000
"""A whole minute, long past on Redis time: fired jobs are due at once."""
MINUTE = 60_000
EVERY_MINUTE = Schedule(name="m", expression="* * * * *", job_type="noop", payload={"n": 1})


def queue(redis: Redis, keys: KeyBuilder) -> RedisQueue:
    """The queue under test, named q."""
    return RedisQueue(redis, keys, "q")


@asynccontextmanager
async def running(*runners: CronRunner) -> AsyncIterator[None]:
    """Run `runners` for the duration of the block, then stop them."""
    tasks = [asyncio.create_task(runner.run()) for runner in runners]
    try:
        yield
    finally:
        for runner in runners:
            runner.stop()
        await asyncio.gather(*tasks)


async def job_ids(redis: Redis, q: RedisQueue, schedule: Schedule, ticks: range) -> list[int]:
    """The ticks in `ticks` whose job exists in the queue."""
    return [tick for tick in ticks if await redis.exists(q.job_key(schedule.job_id(tick)))]


def asleep(clock: ManualClock, n: int) -> Callable[[], bool]:
    """Whether `n` coroutines sleep on `clock` (runners waiting for their next tick)."""
    return lambda: clock.sleepers == n


def tried(runners: list[CronRunner], n: int) -> Callable[[], bool]:
    """Whether `runners` have tried `n` ticks between them, won or lost."""
    return lambda: sum(r.fired + r.already_fired for r in runners) == n


def retried(runner: CronRunner, errors: int) -> Callable[[], bool]:
    """Whether `runner` has fired its second tick or failed again since `errors`."""
    return lambda: runner.fired == 2 or runner.errors > errors


async def test_the_fence_enqueues_each_tick_once_and_never_an_older_one(
    redis: Redis, keys: KeyBuilder
) -> None:
    """A fenced enqueue is refused for a tick at or below the fence's; a later tick passes."""
    q = queue(redis, keys)
    first = await q.enqueue("noop", job_id="a", fence=Fence("f", T0 + MINUTE))
    again = await q.enqueue("noop", job_id="a", fence=Fence("f", T0 + MINUTE))
    older = await q.enqueue("noop", job_id="b", fence=Fence("f", T0))
    later = await q.enqueue("noop", job_id="c", fence=Fence("f", T0 + 2 * MINUTE))
    assert [first.created, again.created, older.created, later.created] == [
        True,
        False,
        False,
        True,
    ]
    assert (await q.counts()).ready == 2
    assert not await redis.exists(q.job_key("b"))


async def test_a_fence_and_a_dedupe_key_work_together(redis: Redis, keys: KeyBuilder) -> None:
    """With both, a new tick whose dedupe key is live returns the live job's id."""
    q = queue(redis, keys)
    first = await q.enqueue("noop", job_id="a", dedupe_key="d", fence=Fence("f", 1))
    deduped = await q.enqueue("noop", job_id="b", dedupe_key="d", fence=Fence("f", 2))
    fenced = await q.enqueue("noop", job_id="c", dedupe_key="other", fence=Fence("f", 2))
    assert (first.id, first.created) == ("a", True)
    assert (deduped.id, deduped.created) == ("a", False)
    assert (fenced.id, fenced.created) == ("c", False)
    assert (await q.counts()).ready == 1


async def test_the_same_tick_fired_by_many_concurrent_calls_is_enqueued_once(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Fifty concurrent fires of one tick create one job; forty-nine learn it was fired."""
    q = queue(redis, keys)
    runner = CronRunner(q, [EVERY_MINUTE], clock=ManualClock(T0 / 1000))
    created = await asyncio.gather(*(runner.fire(EVERY_MINUTE, T0) for _ in range(50)))
    assert created.count(True) == 1
    assert (runner.fired, runner.already_fired) == (1, 49)
    assert (await q.counts()).ready == 1
    assert await redis.incr(keys.tagged("q", "seq")) == 2  # one enqueue reached the ready set


async def test_many_runners_racing_on_each_tick_enqueue_it_once(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Ten runners wake at each of three ticks; each tick has one job, fired by one runner."""
    q = queue(redis, keys)
    clock = ManualClock(T0 / 1000 + 0.5)
    runners = [CronRunner(q, [EVERY_MINUTE], clock=clock) for _ in range(10)]
    async with running(*runners):
        for n in range(1, 4):
            await until(asleep(clock, 10), "every runner asleep until the next tick")
            clock.advance(MINUTE / 1000)
            await until(tried(runners, 10 * (n + 1)), f"every runner tried tick {n}")
    assert sum(runner.fired for runner in runners) == 4  # T0 at start (0.5 s late), then 3
    assert await job_ids(redis, q, EVERY_MINUTE, range(T0, T0 + 4 * MINUTE, MINUTE)) == [
        T0,
        T0 + MINUTE,
        T0 + 2 * MINUTE,
        T0 + 3 * MINUTE,
    ]
    assert (await q.counts()).ready == 4


async def test_a_fired_job_carries_the_schedule_and_is_due_at_its_tick(
    redis: Redis, keys: KeyBuilder
) -> None:
    """The job of a tick has the schedule's type, payload, priority and attempts, due at it."""
    q = queue(redis, keys)
    schedule = Schedule("r", "*/5 * * * *", "mail", {"to": "ops"}, priority=4, max_attempts=2)
    clock = ManualClock(T0 / 1000 + 60)
    runner = CronRunner(q, [schedule], clock=clock, max_lateness_s=1)
    async with running(runner):
        await until(asleep(clock, 1), "the runner asleep until 00:05")
        assert runner.fired == 0  # T0 is a minute old, beyond the lateness: not fired
        clock.advance(4 * 60)
        await until(lambda: runner.fired == 1, "the 00:05 tick fired")
    [lease] = await q.claim("w", 10, 1_000)
    job = lease.job
    assert job.id == schedule.job_id(T0 + 5 * MINUTE)
    assert (job.type, job.payload, job.priority, job.max_attempts) == ("mail", {"to": "ops"}, 4, 2)
    assert job.run_at_ms == T0 + 5 * MINUTE


async def test_a_runner_ahead_of_redis_enqueues_a_job_due_at_the_tick(
    redis: Redis, keys: KeyBuilder
) -> None:
    """A clock ahead of Redis fires early, but the job waits for its tick on Redis time."""
    q = queue(redis, keys)
    ahead = ManualClock(int(await redis_now_s(redis)) + 3_600)
    runner = CronRunner(q, [EVERY_MINUTE], clock=ahead)
    tick = EVERY_MINUTE.latest_tick_ms(int(ahead.time() * 1000))
    assert tick is not None
    assert await runner.fire(EVERY_MINUTE, tick)
    counts = await q.counts()
    assert (counts.live, counts.scheduled) == (1, 1)
    assert await q.claim("w", 10, 1_000) == []


async def redis_now_s(redis: Redis) -> float:
    """Redis server time in seconds."""
    seconds, micros = await redis.time()
    return seconds + micros / 1e6


async def test_after_an_outage_only_the_latest_missed_tick_fires(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Runners down for ten minutes: the new one fires 00:10 (30 s late), not 00:01-00:09."""
    q = queue(redis, keys)
    before = CronRunner(q, [EVERY_MINUTE], clock=ManualClock(T0 / 1000))
    assert await before.fire(EVERY_MINUTE, T0)
    clock = ManualClock(T0 / 1000 + 10 * 60 + 30)
    runner = CronRunner(q, [EVERY_MINUTE], clock=clock, max_lateness_s=60)
    async with running(runner):
        await until(asleep(clock, 1), "the runner asleep until the next tick")
        assert await job_ids(redis, q, EVERY_MINUTE, range(T0, T0 + 11 * MINUTE, MINUTE)) == [
            T0,
            T0 + 10 * MINUTE,
        ]
        clock.advance(30)
        await until(lambda: runner.fired == 2, "the 00:11 tick fired on time")
    assert (runner.skipped, (await q.counts()).ready) == (0, 3)


async def test_a_missed_tick_later_than_the_limit_is_skipped_and_the_next_fires(
    redis: Redis, keys: KeyBuilder
) -> None:
    """A stall past the lateness limit skips the stale tick; the next tick fires on time."""
    q = queue(redis, keys)
    clock = ManualClock(T0 / 1000 + 0.1)
    runner = CronRunner(q, [EVERY_MINUTE], clock=clock, max_lateness_s=10)
    async with running(runner):
        await until(asleep(clock, 1), "the runner asleep until 00:01")
        clock.advance(60 + 20)  # it wakes 20 s after 00:01, as after a stall
        await until(lambda: runner.skipped == 1, "00:01 skipped as too late")
        await until(asleep(clock, 1), "the runner asleep until 00:02")
        clock.advance(40)
        await until(lambda: runner.fired == 2, "00:02 fired")
    assert await job_ids(redis, q, EVERY_MINUTE, range(T0, T0 + 3 * MINUTE, MINUTE)) == [
        T0,
        T0 + 2 * MINUTE,
    ]


async def test_fired_jobs_are_audited_as_enqueued(
    redis: Redis, keys: KeyBuilder, db: AsyncEngine
) -> None:
    """Each fired job is journaled as one `enqueued` row; a lost race journals nothing."""
    await ensure_schema(db)
    clock = ManualClock(T0 / 1000)
    q = queue(redis, keys)
    runner = CronRunner(q, [EVERY_MINUTE], clock=clock)
    assert await runner.fire(EVERY_MINUTE, T0)
    assert not await runner.fire(EVERY_MINUTE, T0)
    await JournalDrain(redis, q.journal_key, db, consumer="d", clock=clock).drain_all()
    async with db.connect() as conn:
        rows = (await conn.execute(select(audit_table.c.job_id, audit_table.c.event))).all()
    assert [tuple(row) for row in rows] == [(EVERY_MINUTE.job_id(T0), "enqueued")]


async def test_a_tick_due_while_redis_is_down_fires_once_redis_is_back(
    disposable_redis: DisposableRedis, keys: KeyBuilder
) -> None:
    """Redis SIGKILLed over a tick: the runner retries every second and fires it on restart."""
    client = redis_client(disposable_redis.url)
    q = queue(client, keys)
    clock = ManualClock(T0 / 1000 + 0.5)
    runner = CronRunner(q, [EVERY_MINUTE], clock=clock, max_lateness_s=60, retry_s=1)
    try:
        async with running(runner):
            await until(lambda: runner.fired == 1, "00:00 fired at start")
            await until(asleep(clock, 1), "the runner asleep until 00:01")
            disposable_redis.kill()
            clock.advance(60)
            await until(lambda: runner.errors >= 1, "a failed fire of 00:01", timeout_s=10)
            await disposable_redis.start()
            while runner.fired < 2:  # a pooled connection may still fail once after it
                assert runner.errors < 5, "the runner never got through to Redis again"
                await until(asleep(clock, 1), "the runner waiting to retry", timeout_s=10)
                clock.advance(1)
                await until(retried(runner, runner.errors), "a retry")
        assert await client.exists(q.job_key(EVERY_MINUTE.job_id(T0 + MINUTE)))
    finally:
        await client.aclose()


def test_a_runner_refuses_two_schedules_with_one_name(redis: Redis, keys: KeyBuilder) -> None:
    """Two schedules under one name would share a fence and starve each other: refused."""
    twin = Schedule(name="m", expression="*/5 * * * *", job_type="noop")
    with pytest.raises(ValueError, match="schedule names must be unique"):
        CronRunner(queue(redis, keys), [EVERY_MINUTE, twin], clock=ManualClock())
