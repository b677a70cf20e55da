"""The Redis queue on the real server, driven by explicit Redis times (now_ms)."""

from typing import Any

from redis.asyncio import Redis

from labs.keys import KeyBuilder
from scheduler.queue import RedisQueue
from scheduler.store import JournalEntry

T0 = 1_700_000_000_000
LEASE = 1_000


def queue(redis: Redis, keys: KeyBuilder) -> RedisQueue:
    """The queue under test, named q."""
    return RedisQueue(redis, keys, "q")


async def test_enqueue_claim_ack_deletes_the_job(redis: Redis, keys: KeyBuilder) -> None:
    """Enqueue claim ack deletes the job."""
    q = queue(redis, keys)
    enqueued = await q.enqueue("noop", {"x": 1}, now_ms=T0)
    assert enqueued.created
    [lease] = await q.claim("w1", 10, LEASE, now_ms=T0)
    assert lease.job.id == enqueued.id
    assert lease.job.payload == {"x": 1}
    assert lease.token == lease.job.attempts == 1
    assert lease.deadline_ms == T0 + LEASE
    assert await q.owner(enqueued.id) == "w1"
    assert await q.claim("w2", 10, LEASE, now_ms=T0) == []
    assert await q.ack(lease)
    assert (await q.counts()).live == 0
    # Bounded memory: nothing of the job is left but its journal (until drained), the
    # sequence counter and the wake-up token no worker took (at most 64 are kept).
    assert sorted([key async for key in redis.scan_iter(match=f"{keys.prefix}:*")]) == [
        q.journal_key.encode(),
        keys.tagged("q", "seq").encode(),
        keys.tagged("q", "wake").encode(),
    ]
    entries: Any = await redis.xrange(q.journal_key)
    journal = [JournalEntry.parse(entry_id, fields) for entry_id, fields in entries]
    assert [(e.event, e.job_id, e.attempt) for e in journal] == [
        ("enqueued", enqueued.id, 0),
        ("started", enqueued.id, 1),
        ("succeeded", enqueued.id, 1),
    ]


async def test_priority_then_fifo_among_due_jobs_and_run_at_waits(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Priority then fifo among due jobs and run at waits."""
    q = queue(redis, keys)
    low1 = await q.enqueue("noop", priority=1, now_ms=T0)
    high = await q.enqueue("noop", priority=7, now_ms=T0)
    low2 = await q.enqueue("noop", priority=1, now_ms=T0)
    later = await q.enqueue("noop", priority=9, run_at_ms=T0 + 500, now_ms=T0)
    claimed = await q.claim("w", 10, LEASE, now_ms=T0)
    assert [lease.job.id for lease in claimed] == [high.id, low1.id, low2.id]
    assert await q.claim("w", 10, LEASE, now_ms=T0 + 499) == []
    [due] = await q.claim("w", 10, LEASE, now_ms=T0 + 500)
    assert due.job.id == later.id
    assert due.job.run_at_ms == T0 + 500


async def test_a_due_high_priority_job_overtakes_waiting_low_ones(
    redis: Redis, keys: KeyBuilder
) -> None:
    """A due high priority job overtakes waiting low ones."""
    q = queue(redis, keys)
    low = await q.enqueue("noop", priority=0, now_ms=T0)
    high = await q.enqueue("noop", priority=5, run_at_ms=T0 + 10, now_ms=T0)
    claimed = await q.claim("w", 1, LEASE, now_ms=T0 + 10)
    assert [lease.job.id for lease in claimed] == [high.id]
    assert [lease.job.id for lease in await q.claim("w", 1, LEASE, now_ms=T0 + 10)] == [low.id]


async def test_claim_takes_at_most_n(redis: Redis, keys: KeyBuilder) -> None:
    """Claim takes at most n."""
    q = queue(redis, keys)
    for _ in range(5):
        await q.enqueue("noop", now_ms=T0)
    assert len(await q.claim("w", 3, LEASE, now_ms=T0)) == 3
    assert len(await q.claim("w", 3, LEASE, now_ms=T0)) == 2


async def test_dedupe_returns_the_first_id_until_the_job_is_done(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Dedupe returns the first id until the job is done."""
    q = queue(redis, keys)
    first = await q.enqueue("noop", dedupe_key="order-7", now_ms=T0)
    again = await q.enqueue("noop", dedupe_key="order-7", now_ms=T0)
    assert again.id == first.id
    assert not again.created
    assert (await q.counts()).ready == 1
    [lease] = await q.claim("w", 10, LEASE, now_ms=T0)
    assert await q.ack(lease)
    assert (await q.enqueue("noop", dedupe_key="order-7", now_ms=T0)).created


async def test_five_failures_make_the_job_dead_and_remove_it(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Five failures make the job dead and remove it."""
    q = queue(redis, keys)
    job = await q.enqueue("fail", {"n": 1}, dedupe_key="d", now_ms=T0)
    now = T0
    for attempt in range(1, 5):
        [lease] = await q.claim("w", 10, LEASE, now_ms=now)
        assert lease.job.attempts == attempt
        result = await q.nack(lease, 100, "boom", now_ms=now)
        assert result.retry_at_ms == now + 100
        assert await q.claim("w", 10, LEASE, now_ms=now + 99) == []
        now += 100
    [last] = await q.claim("w", 10, LEASE, now_ms=now)
    assert last.job.attempts == 5
    result = await q.nack(last, 100, "boom", now_ms=now)
    assert result.dead is not None
    assert result.dead.job.id == job.id
    assert result.dead.job.attempts == 5
    assert result.dead.job.payload == {"n": 1}
    assert result.dead.error == "boom"
    assert (await q.counts()).live == 0
    assert not await redis.exists(q.job_key(job.id))
    assert (await q.enqueue("fail", dedupe_key="d", now_ms=now)).created


async def test_heartbeat_extends_only_the_leases_the_worker_holds(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Heartbeat extends only the leases the worker holds."""
    q = queue(redis, keys)
    await q.enqueue("noop", now_ms=T0)
    await q.enqueue("noop", now_ms=T0)
    [mine] = await q.claim("w1", 1, LEASE, now_ms=T0)
    [theirs] = await q.claim("w2", 1, LEASE, now_ms=T0)
    forged = type(theirs)(job=theirs.job, worker_id="w1", deadline_ms=theirs.deadline_ms)
    assert await q.heartbeat("w1", [mine, forged], LEASE, now_ms=T0 + 900) == [True, False]
    # At T0 + 1500 only w2's lease (deadline T0 + 1000) has expired.
    assert await q.reclaim(now_ms=T0 + 1_500) == (1, [])
    assert await q.owner(mine.job.id) == "w1"
    assert await q.owner(theirs.job.id) is None


async def test_a_stale_worker_cannot_ack_nack_or_heartbeat_a_redelivered_job(
    redis: Redis, keys: KeyBuilder
) -> None:
    """A stale worker cannot ack nack or heartbeat a redelivered job."""
    q = queue(redis, keys)
    await q.enqueue("noop", now_ms=T0)
    [stale] = await q.claim("w1", 1, LEASE, now_ms=T0)
    assert await q.reclaim(now_ms=T0 + LEASE + 1) == (1, [])
    [fresh] = await q.claim("w2", 1, LEASE, now_ms=T0 + LEASE + 1)
    assert fresh.token == 2
    assert not await q.ack(stale)
    assert (await q.nack(stale, 0, "late", now_ms=T0 + LEASE + 2)).refused
    assert await q.heartbeat("w1", [stale], LEASE, now_ms=T0 + LEASE + 2) == [False]
    assert await q.owner(fresh.job.id) == "w2"
    assert await q.ack(fresh)


async def test_fencing_holds_when_the_same_worker_claims_the_job_again(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Fencing holds when the same worker claims the job again."""
    q = queue(redis, keys)
    await q.enqueue("noop", now_ms=T0)
    [first] = await q.claim("w1", 1, LEASE, now_ms=T0)
    await q.reclaim(now_ms=T0 + LEASE + 1)
    [second] = await q.claim("w1", 1, LEASE, now_ms=T0 + LEASE + 1)
    assert not await q.ack(first)  # the token (attempt 1) is stale
    assert await q.ack(second)


async def test_reclaim_waits_for_the_lease_deadline(redis: Redis, keys: KeyBuilder) -> None:
    """Reclaim waits for the lease deadline."""
    q = queue(redis, keys)
    job = await q.enqueue("sleep", {"ms": 60_000}, now_ms=T0)
    await q.claim("dead-worker", 1, LEASE, now_ms=T0)
    assert await q.reclaim(now_ms=T0 + LEASE) == (0, [])  # the deadline itself is held
    assert await q.claim("w2", 1, LEASE, now_ms=T0 + LEASE) == []
    assert await q.reclaim(now_ms=T0 + LEASE + 1) == (1, [])
    assert await q.reclaim(now_ms=T0 + LEASE + 1) == (0, [])  # only one reclaimer moves it
    [again] = await q.claim("w2", 1, LEASE, now_ms=T0 + LEASE + 1)
    assert again.job.id == job.id
    assert again.job.attempts == 2


async def test_an_expired_last_attempt_is_dead(redis: Redis, keys: KeyBuilder) -> None:
    """An expired last attempt is dead."""
    q = queue(redis, keys)
    job = await q.enqueue("sleep", max_attempts=1, now_ms=T0)
    await q.claim("dead-worker", 1, LEASE, now_ms=T0)
    requeued, dead = await q.reclaim(now_ms=T0 + LEASE + 1)
    assert requeued == 0
    assert [(each.job.id, each.error) for each in dead] == [
        (job.id, "lease expired (worker dead-worker)")
    ]
    assert not await redis.exists(q.job_key(job.id))


async def test_release_hands_a_job_back_without_using_an_attempt(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Release hands a job back without using an attempt."""
    q = queue(redis, keys)
    await q.enqueue("noop", now_ms=T0)
    [lease] = await q.claim("w1", 1, LEASE, now_ms=T0)
    assert await q.release(lease)
    assert not await q.release(lease)
    [again] = await q.claim("w2", 1, LEASE, now_ms=T0)
    assert again.job.attempts == 1


async def test_redis_time_is_the_default_clock(redis: Redis, keys: KeyBuilder) -> None:
    """Redis time is the default clock."""
    q = queue(redis, keys)
    seconds, micros = await redis.time()
    now = seconds * 1000 + micros // 1000
    job = await q.enqueue("noop")
    [lease] = await q.claim("w", 1, 2_000)
    assert lease.job.id == job.id
    assert now <= lease.deadline_ms - 2_000 < now + 1_000


async def test_due_enqueues_wake_idle_workers_and_tokens_stay_bounded(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Each due job pushes one wake-up token (64 at most); a scheduled one pushes none."""
    q = queue(redis, keys)
    assert not await q.wait_for_work(0.01)
    await q.enqueue("noop", run_at_ms=T0 + 60_000, now_ms=T0)
    assert not await q.wait_for_work(0.01)
    await q.enqueue("noop", now_ms=T0)
    assert await q.wait_for_work(0.01)
    for _ in range(100):
        await q.enqueue("noop", now_ms=T0)
    assert await redis.llen(keys.tagged("q", "wake")) == 64
