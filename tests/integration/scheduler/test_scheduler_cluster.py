"""The queue's scripts on the real 3-master Redis Cluster: one queue, one slot, every path."""

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import RedisCluster

from labs.clients import redis_cluster_client
from labs.keys import KeyBuilder
from scheduler.domain import BreakerPolicy, BreakerState, LanePolicy
from scheduler.queue import RedisQueue

T0 = 1_700_000_000_000
LEASE = 1_000
BREAKER = BreakerPolicy(ratio=0.5, min_calls=2, window_ms=10_000, cooldown_ms=5_000, probes=1)


@pytest.fixture
async def cluster(redis_cluster_url: str, keys: KeyBuilder) -> AsyncIterator[RedisCluster]:
    """A cluster client; every key the test wrote is deleted afterwards, on every master."""
    client = redis_cluster_client(redis_cluster_url)
    yield client
    written = [key async for key in client.scan_iter(match=f"{keys.prefix}*")]
    for key in written:
        await client.delete(key)
    await client.aclose()


async def test_a_queue_lives_in_one_slot_and_runs_every_script_there(
    cluster: RedisCluster, keys: KeyBuilder
) -> None:
    """Enqueue, claim, heartbeat, nack, reclaim, breakers, dead and ack on a cluster."""
    q = RedisQueue(cluster, keys, "orders")
    await q.set_policy("hook", LanePolicy(concurrency=2, breaker=BREAKER))
    done = await q.enqueue("noop", {"n": 1}, dedupe_key="d-1", now_ms=T0)
    assert not (await q.enqueue("noop", {"n": 1}, dedupe_key="d-1", now_ms=T0)).created
    hooks = [(await q.enqueue("hook", now_ms=T0)).id for _ in range(3)]

    leases = await q.claim("w1", 10, LEASE, now_ms=T0)
    assert sorted(lease.job.id for lease in leases) == sorted([done.id, *hooks[:2]])  # cap 2
    assert await q.heartbeat("w1", leases, LEASE, now_ms=T0 + 500) == [True] * 3
    by_id = {lease.job.id: lease for lease in leases}
    assert await q.ack(by_id[done.id], now_ms=T0 + 600)
    for job_id in hooks[:2]:
        await q.nack(by_id[job_id], 0, "503", now_ms=T0 + 700)
    assert (await q.breaker("hook")).state is BreakerState.OPEN
    assert await q.claim("w1", 10, LEASE, now_ms=T0 + 800) == []
    counts = await q.counts()
    assert (counts.parked, counts.live) == (3, 3)

    half_open = T0 + 700 + BREAKER.cooldown_ms
    [probe] = await q.claim("w2", 10, LEASE, now_ms=half_open)
    assert probe.job.id in hooks
    assert await q.reclaim(now_ms=half_open + LEASE + 1) == (1, [])
    assert (await q.breaker("hook")).state is BreakerState.HALF_OPEN
    assert await q.claim("w3", 10, LEASE, now_ms=half_open + LEASE + 2) == []  # probe out
    [again] = await q.claim("w3", 10, LEASE, now_ms=half_open + BREAKER.cooldown_ms)
    assert await q.ack(again, now_ms=half_open + BREAKER.cooldown_ms + 1), "a lost probe's round"
    assert (await q.breaker("hook")).state is BreakerState.CLOSED

    slots = {cluster.keyslot(key) async for key in cluster.scan_iter(match=f"{keys.prefix}*")}
    assert len(slots) == 1
    journal = await cluster.xlen(q.journal_key)
    assert journal >= 10, "every transition journaled on the same slot"
