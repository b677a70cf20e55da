"""The worker on the real Redis, with a ManualClock for handler time, timeouts and heartbeats."""

import asyncio
import random
import time
from collections.abc import Sequence

import httpx
from redis.asyncio import Redis

from labs.clock import ManualClock
from labs.keys import KeyBuilder
from labs.testing.waiting import until
from scheduler.domain import (
    BreakerPolicy,
    BreakerState,
    DeadJob,
    Job,
    LanePolicy,
    RetryLaterError,
    RetryPolicy,
)
from scheduler.handlers import HandlerContext, builtin_handlers
from scheduler.queue import Lease, RedisQueue
from scheduler.worker import Worker

NO_BACKOFF = RetryPolicy(base_ms=0, cap_ms=0)


def make_worker(
    q: RedisQueue, clock: ManualClock, dead: list[DeadJob], **options: object
) -> Worker:
    """A worker with the built-in handlers on `clock`, reporting dead jobs to `dead`."""
    rng = random.Random(3)

    async def on_dead(job: DeadJob) -> None:
        dead.append(job)

    return Worker(
        q,
        # No job here is a webhook: the client never opens a connection, so needs no closing.
        builtin_handlers(HandlerContext(clock, rng, q.redis, httpx.AsyncClient())),
        clock=clock,
        rng=rng,
        on_dead=on_dead,
        **options,  # type: ignore[arg-type]
    )


async def test_burst_runs_everything_retries_failures_and_reports_the_dead(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Burst runs everything retries failures and reports the dead."""
    q = RedisQueue(redis, keys)
    dead: list[DeadJob] = []
    for _ in range(5):
        await q.enqueue("noop")
    failing = await q.enqueue("fail", {"message": "nope"}, max_attempts=3)
    flaky = await q.enqueue("flaky", {"p": 0.5}, max_attempts=50)
    worker = make_worker(q, ManualClock(), dead, concurrency=3, retry=NO_BACKOFF)
    await asyncio.wait_for(worker.run(burst=True), 10)
    assert [(each.job.id, each.job.attempts) for each in dead] == [(failing.id, 3)]
    assert dead[0].error == "JobFailedError('nope')"
    assert (await q.counts()).live == 0
    assert not await redis.exists(q.job_key(flaky.id))


async def test_a_job_of_unknown_type_fails_like_any_other(redis: Redis, keys: KeyBuilder) -> None:
    """A job of unknown type fails like any other."""
    q = RedisQueue(redis, keys)
    dead: list[DeadJob] = []
    await q.enqueue("no-such-type", max_attempts=1)
    await asyncio.wait_for(make_worker(q, ManualClock(), dead).run(burst=True), 10)
    assert dead[0].error == "UnknownJobTypeError('no-such-type')"


async def test_a_handler_past_its_timeout_fails_its_attempt(redis: Redis, keys: KeyBuilder) -> None:
    """A handler past its timeout fails its attempt."""
    q = RedisQueue(redis, keys)
    clock = ManualClock()
    dead: list[DeadJob] = []
    await q.enqueue("sleep", {"ms": 60_000}, max_attempts=1)
    worker = make_worker(q, clock, dead, timeout_s=5.0, lease_ms=60_000)
    running = asyncio.create_task(worker.run(burst=True))
    # heartbeat, poll, the handler's sleep and its timeout
    await until(lambda: clock.sleepers == 4, "the handler and its timer")
    clock.advance(4.9)
    await asyncio.sleep(0)
    assert worker.in_flight == 1
    clock.advance(0.1)
    await asyncio.wait_for(running, 10)
    assert [each.error for each in dead] == ["HandlerTimeoutError('ran longer than 5.0 s')"]


async def test_drain_finishes_what_it_can_and_hands_back_the_rest(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Drain finishes what it can and hands back the rest."""
    q = RedisQueue(redis, keys)
    clock = ManualClock()
    short = await q.enqueue("sleep", {"ms": 1_000}, priority=9)
    long = await q.enqueue("sleep", {"ms": 60_000})
    worker = make_worker(q, clock, [], concurrency=2, lease_ms=600_000)
    running = asyncio.create_task(worker.run())
    # heartbeat, poll, and a sleep and a timeout per handler
    await until(lambda: clock.sleepers == 6, "both handlers and their timers")
    draining = asyncio.create_task(worker.drain(grace_s=5))
    await until(lambda: clock.time() + 5 in clock.deadlines, "the grace timer")
    clock.advance(1)
    await until(lambda: worker.in_flight == 1, "the short job")
    assert not await redis.exists(q.job_key(short.id))
    clock.advance(4)
    await asyncio.wait_for(draining, 10)
    await asyncio.wait_for(running, 10)
    counts = await q.counts()
    assert (counts.live, counts.ready) == (1, 1)
    [again] = await q.claim("w2", 1, 1_000)
    assert again.job.id == long.id
    assert again.job.attempts == 1  # handing back used no attempt


async def test_heartbeats_keep_the_lease_and_a_lost_lease_cancels_the_handler(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Heartbeats keep the lease and a lost lease cancels the handler."""
    q = RedisQueue(redis, keys)
    clock = ManualClock()
    job = await q.enqueue("sleep", {"ms": 60_000})
    worker = make_worker(q, clock, [], lease_ms=3_000, poll_s=3_600)
    running = asyncio.create_task(worker.run())
    await until(lambda: worker.in_flight == 1, "the claim")
    leases = keys.tagged("default", "leases")
    first_deadline = await redis.zscore(leases, job.id)
    assert first_deadline is not None
    clock.advance(1)  # lease / 3: a heartbeat
    await until_deadline_moves(redis, leases, job.id, first_deadline)
    # Another worker reclaims the lease as if this one had stalled, and claims the job.
    seconds, _ = await redis.time()
    assert await q.reclaim(now_ms=(seconds + 60) * 1000) == (1, [])
    [stolen] = await q.claim("other", 1, 60_000)
    clock.advance(1)
    await until(lambda: worker.in_flight == 0, "the lost lease's handler to be cancelled")
    assert await q.owner(job.id) == "other"
    assert stolen.job.attempts == 2
    await worker.drain(grace_s=0)
    await asyncio.wait_for(running, 10)


async def until_deadline_moves(redis: Redis, key: str, member: str, before: float) -> None:
    """Wait for a heartbeat to move the lease deadline past `before`."""
    deadline = time.monotonic() + 5
    while (await redis.zscore(key, member) or 0) <= before:
        assert time.monotonic() < deadline, "the heartbeat never extended the lease"
        await asyncio.sleep(0.005)


def test_jobs_are_values() -> None:
    """Jobs are values."""
    assert Job(id="a", type="noop") == Job(id="a", type="noop")


async def test_an_open_breaker_halts_only_its_type_and_burns_no_attempts(
    redis: Redis, keys: KeyBuilder
) -> None:
    """A failing type trips its breaker: its other jobs wait untouched, other types all run."""
    q = RedisQueue(redis, keys)
    breaker = BreakerPolicy(ratio=1.0, min_calls=3, window_ms=60_000, cooldown_ms=60_000)
    await q.set_policy("fail", LanePolicy(breaker=breaker))
    failing = [(await q.enqueue("fail", max_attempts=5)).id for _ in range(10)]
    for _ in range(20):
        await q.enqueue("noop")
    worker = make_worker(q, ManualClock(), [], concurrency=1, retry=NO_BACKOFF)
    await asyncio.wait_for(worker.run(burst=True), 10)
    assert (await q.breaker("fail")).state is BreakerState.OPEN
    counts = await q.counts()
    assert (counts.live, counts.parked) == (10, 10)  # every noop ran; every fail job waits
    attempts = [int(await redis.hget(q.job_key(job_id), "attempts") or 0) for job_id in failing]
    assert sum(attempts) == breaker.min_calls  # only the calls that opened it


class SlowAckQueue(RedisQueue):
    """The real queue, whose ack replies only when the test lets it (after Redis ran it)."""

    def __init__(self, redis: Redis, keys: KeyBuilder) -> None:
        """Wrap the queue; acks wait for `reply`; `heartbeats` counts heartbeats answered."""
        super().__init__(redis, keys)
        self.acked = asyncio.Event()
        self.reply = asyncio.Event()
        self.heartbeats = 0

    async def heartbeat(
        self, worker_id: str, leases: Sequence[Lease], lease_ms: int, *, now_ms: int | None = None
    ) -> list[bool]:
        """Heartbeat in Redis and count it."""
        held = await super().heartbeat(worker_id, leases, lease_ms, now_ms=now_ms)
        self.heartbeats += 1
        return held

    async def ack(self, lease: Lease, *, now_ms: int | None = None) -> bool:
        """Ack in Redis, then hold the reply until the test releases it."""
        done = await super().ack(lease, now_ms=now_ms)
        self.acked.set()
        await self.reply.wait()
        return done


async def test_a_heartbeat_racing_the_workers_own_ack_cancels_nothing(
    redis: Redis, keys: KeyBuilder
) -> None:
    """A heartbeat that finds the lease gone because this worker just acked it is harmless."""
    q = SlowAckQueue(redis, keys)
    clock = ManualClock()
    await q.enqueue("noop")
    worker = make_worker(q, clock, [], lease_ms=3_000, poll_s=3_600)
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(q.acked.wait(), 10)  # acked in Redis; the reply is on its way
    clock.advance(1)  # lease / 3: the heartbeat sends the lease it still thinks it holds
    await until(lambda: q.heartbeats == 1, "the heartbeat's answer: lease gone")
    await asyncio.sleep(0)  # let the heartbeat act on its answer
    assert worker.in_flight == 1  # the delivery was not cancelled under its ack
    q.reply.set()
    await until(lambda: worker.processed == 1, "the delivery to finish")
    assert worker.in_flight == 0
    await worker.drain(grace_s=0)
    await asyncio.wait_for(running, 10)


async def test_an_idle_worker_is_woken_by_an_enqueue_not_by_its_poll(
    redis: Redis, keys: KeyBuilder
) -> None:
    """With an hour-long poll and a clock that never moves, a new job still runs at once."""
    q = RedisQueue(redis, keys)
    clock = ManualClock()
    worker = make_worker(q, clock, [], poll_s=3_600)
    running = asyncio.create_task(worker.run())
    await until(lambda: clock.sleepers == 2, "the idle worker's poll and heartbeat")
    await q.enqueue("noop")
    await until(lambda: worker.processed == 1, "the job, woken by its enqueue")
    await worker.drain(grace_s=0)
    await asyncio.wait_for(running, 10)


async def test_a_downstream_retry_after_delays_the_retry_past_the_backoff(
    redis: Redis, keys: KeyBuilder
) -> None:
    """A handler failing with `Retry-After: 120` is retried no sooner, whatever the backoff."""
    q = RedisQueue(redis, keys)

    async def throttled(job: Job) -> None:
        raise RetryLaterError(f"429 for {job.id}", after_ms=120_000)

    job = await q.enqueue("throttled")
    before_ms = int(time.time() * 1000)
    worker = Worker(
        q, {"throttled": throttled}, clock=ManualClock(), rng=random.Random(1), retry=NO_BACKOFF
    )
    await asyncio.wait_for(worker.run(burst=True), 10)
    state = await q.peek(job.id)
    assert state is not None
    assert state["attempts"] == "1"
    assert (await q.counts()).scheduled == 1
    assert int(state["run_at"]) >= before_ms + 120_000
