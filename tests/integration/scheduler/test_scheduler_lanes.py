"""Circuit breakers, concurrency caps and rates per lane, in the queue scripts on real Redis."""

from redis.asyncio import Redis

from labs.keys import KeyBuilder
from scheduler.domain import DEFAULT_POLICIES, BreakerPolicy, BreakerState, LanePolicy
from scheduler.queue import Lease, RedisQueue

T0 = 1_700_000_000_000
LEASE = 60_000
BREAKER = BreakerPolicy(ratio=0.5, min_calls=4, window_ms=10_000, cooldown_ms=5_000, probes=2)


async def queue_with(redis: Redis, keys: KeyBuilder, **policies: LanePolicy) -> RedisQueue:
    """A queue whose job types have these policies."""
    q = RedisQueue(redis, keys, "q")
    for job_type, policy in policies.items():
        await q.set_policy(job_type, policy)
    return q


async def claim_types(q: RedisQueue, n: int, now_ms: int) -> list[Lease]:
    """Claim up to `n` jobs at `now_ms`."""
    return await q.claim("w1", n, LEASE, now_ms=now_ms)


async def fail_all(q: RedisQueue, leases: list[Lease], now_ms: int) -> None:
    """Nack every lease with a downstream failure."""
    for lease in leases:
        await q.nack(lease, 0, "503", now_ms=now_ms)


async def test_policies_round_trip_through_redis(redis: Redis, keys: KeyBuilder) -> None:
    """A policy written is read back; removed, it is gone; defaults never overwrite it."""
    policy = LanePolicy(concurrency=3, rate=2.5, burst=5, breaker=BREAKER)
    q = await queue_with(redis, keys, hook=policy)
    assert await q.policies() == {"hook": policy}
    await q.set_policy("hook", None)
    assert await q.policies() == {}
    await q.set_policy("webhook", policy)
    await q.set_default_policies(DEFAULT_POLICIES | {"other": LanePolicy(rate=1)})
    assert await q.policies() == {"webhook": policy, "other": LanePolicy(rate=1)}


async def test_an_open_breaker_holds_its_lane_back_and_burns_no_attempts(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Failures open the breaker: its jobs are parked untouched; other types keep flowing."""
    q = await queue_with(redis, keys, hook=LanePolicy(breaker=BREAKER))
    hooks = [(await q.enqueue("hook", now_ms=T0)).id for _ in range(8)]
    await fail_all(q, await claim_types(q, 4, T0), T0)  # 4 of 4 calls failed: open
    breaker = await q.breaker("hook")
    assert (breaker.state, breaker.open_until_ms) == (BreakerState.OPEN, T0 + 5_000)
    others = [(await q.enqueue("noop", now_ms=T0)).id for _ in range(3)]

    leases = await claim_types(q, 20, T0 + 1)
    assert sorted(lease.job.id for lease in leases) == sorted(others)
    counts = await q.counts()
    assert (counts.parked, counts.ready) == (8, 0)  # 4 retries + 4 never tried
    untried = hooks[4:]
    attempts = [int(await redis.hget(q.job_key(job_id), "attempts") or -1) for job_id in untried]
    assert attempts == [0, 0, 0, 0]


async def test_half_open_lets_probes_through_and_closes_on_their_success(
    redis: Redis, keys: KeyBuilder
) -> None:
    """After the cooldown, `probes` jobs run; when they succeed the lane flows again."""
    q = await queue_with(redis, keys, hook=LanePolicy(breaker=BREAKER))
    for _ in range(10):
        await q.enqueue("hook", now_ms=T0)
    await fail_all(q, await claim_types(q, 4, T0), T0)
    assert await claim_types(q, 10, T0 + 4_999) == []
    probes = await claim_types(q, 10, T0 + 5_000)
    assert len(probes) == BREAKER.probes
    assert (await q.breaker("hook")).state is BreakerState.HALF_OPEN
    assert await claim_types(q, 10, T0 + 5_001) == []  # no more than the probes
    for lease in probes:
        assert await q.ack(lease, now_ms=T0 + 5_002)
    assert (await q.breaker("hook")).state is BreakerState.CLOSED
    assert len(await claim_types(q, 10, T0 + 5_003)) == 8


async def test_a_failed_probe_opens_the_breaker_again(redis: Redis, keys: KeyBuilder) -> None:
    """A probe that fails reopens the breaker for another cooldown."""
    q = await queue_with(redis, keys, hook=LanePolicy(breaker=BREAKER))
    for _ in range(6):
        await q.enqueue("hook", now_ms=T0)
    await fail_all(q, await claim_types(q, 4, T0), T0)
    [probe, _] = await claim_types(q, 10, T0 + 5_000)
    await fail_all(q, [probe], T0 + 5_100)
    breaker = await q.breaker("hook")
    assert (breaker.state, breaker.open_until_ms) == (BreakerState.OPEN, T0 + 10_100)
    assert await claim_types(q, 10, T0 + 10_099) == []


async def test_failures_below_the_ratio_or_volume_keep_it_closed(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Three failures (below min_calls), or failures under the ratio, do not open it."""
    q = await queue_with(redis, keys, hook=LanePolicy(breaker=BREAKER))
    for _ in range(12):
        await q.enqueue("hook", now_ms=T0)
    await fail_all(q, await claim_types(q, 3, T0), T0)
    assert (await q.breaker("hook")).state is BreakerState.CLOSED
    for lease in await claim_types(q, 4, T0):
        await q.ack(lease, now_ms=T0)
    await fail_all(q, await claim_types(q, 1, T0), T0)  # 4 of 8 failed: the ratio, open
    assert (await q.breaker("hook")).state is BreakerState.OPEN


async def test_each_webhook_host_is_its_own_lane(redis: Redis, keys: KeyBuilder) -> None:
    """A failing host opens only its own lane; the same type to another host flows."""
    q = await queue_with(redis, keys, webhook=LanePolicy(breaker=BREAKER))
    bad = [
        (await q.enqueue("webhook", {"url": "http://bad.test/x"}, now_ms=T0)).id for _ in range(4)
    ]
    good = [
        (await q.enqueue("webhook", {"url": "http://ok.test/y"}, now_ms=T0)).id for _ in range(2)
    ]
    leases = await claim_types(q, 4, T0)
    assert sorted(lease.job.id for lease in leases) == sorted(bad)
    await fail_all(q, leases, T0)
    assert (await q.breaker("webhook@bad.test")).state is BreakerState.OPEN
    assert sorted(lease.job.id for lease in await claim_types(q, 10, T0)) == sorted(good)
    assert [b.lane for b in await q.breakers()] == ["webhook@bad.test"]


async def test_a_permanent_failure_is_dead_at_once_and_trips_nothing(
    redis: Redis, keys: KeyBuilder
) -> None:
    """A permanent failure skips the retries and does not count against the breaker."""
    q = await queue_with(redis, keys, hook=LanePolicy(breaker=BREAKER))
    for _ in range(4):
        await q.enqueue("hook", now_ms=T0)
    for lease in await claim_types(q, 4, T0):
        result = await q.nack(lease, 0, "400", permanent=True, trips_breaker=False, now_ms=T0)
        assert result.dead is not None
        assert result.dead.job.attempts == 1
    assert (await q.breaker("hook")).state is BreakerState.CLOSED
    assert (await q.counts()).live == 0


async def test_a_concurrency_cap_holds_across_claims_until_a_slot_frees(
    redis: Redis, keys: KeyBuilder
) -> None:
    """At most `concurrency` jobs of the lane run at once, whoever claims them."""
    q = await queue_with(redis, keys, slow=LanePolicy(concurrency=2))
    for _ in range(5):
        await q.enqueue("slow", now_ms=T0)
    first = await claim_types(q, 10, T0)
    assert len(first) == 2
    assert await q.claim("w2", 10, LEASE, now_ms=T0) == []
    assert await q.in_flight() == {"slow": 2}
    await q.ack(first[0], now_ms=T0)
    await q.nack(first[1], 60_000, "later", now_ms=T0)  # a retry waiting frees its slot too
    assert len(await claim_types(q, 10, T0)) == 2
    assert await q.in_flight() == {"slow": 2}


async def test_a_rate_limit_refills_on_redis_time(redis: Redis, keys: KeyBuilder) -> None:
    """Two per second with a burst of two: two now, none 499 ms later, one at 500 ms."""
    q = await queue_with(redis, keys, paced=LanePolicy(rate=2, burst=2))
    for _ in range(6):
        await q.enqueue("paced", now_ms=T0)
    assert len(await claim_types(q, 10, T0)) == 2
    assert await claim_types(q, 10, T0 + 499) == []
    assert len(await claim_types(q, 10, T0 + 500)) == 1
    assert len(await claim_types(q, 10, T0 + 5_000)) == 2  # never more than the burst
