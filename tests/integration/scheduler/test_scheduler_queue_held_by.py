"""`RedisQueue.held_by`: the jobs whose leases one worker holds, and no other's."""

from redis.asyncio import Redis

from labs.keys import KeyBuilder
from scheduler.queue import RedisQueue

NOW = 1_000_000


async def test_held_by_lists_only_the_workers_own_live_leases(
    redis: Redis, keys: KeyBuilder
) -> None:
    """Each worker sees its own leases; an acked job is no longer held."""
    q = RedisQueue(redis, keys)
    for n in range(5):
        await q.enqueue("noop", {"n": n}, now_ms=NOW)
    mine = await q.claim("w1", 3, 10_000, now_ms=NOW)
    theirs = await q.claim("w2", 2, 10_000, now_ms=NOW)
    assert await q.held_by("w1") == {lease.job.id for lease in mine}
    assert await q.held_by("w2") == {lease.job.id for lease in theirs}
    assert await q.ack(mine[0])
    assert await q.held_by("w1") == {lease.job.id for lease in mine[1:]}
    assert await q.held_by("nobody") == set()
