"""check_all on the real 3-master Redis Cluster: one tag, one slot, all-or-nothing."""

from labs.clients import redis_cluster_client
from labs.keys import KeyBuilder
from rate_limiter.domain import Algorithm, Limit
from rate_limiter.store import RedisLimiter


async def test_check_all_on_a_cluster_is_one_slot_and_all_or_nothing(
    redis_cluster_url: str, keys: KeyBuilder
) -> None:
    """Keys of one tag share a slot (no CROSSSLOT); one denied check leaves the rest untouched."""
    cluster = redis_cluster_client(redis_cluster_url)
    limiter = RedisLimiter(cluster, keys)
    checks = [
        ("api", Limit(Algorithm.TOKEN_BUCKET, 10, 1000), 1),
        ("api", Limit(Algorithm.SLIDING_LOG, 100, 60_000), 1),
        ("uploads", Limit(Algorithm.FIXED_WINDOW, 2, 86_400_000), 1),
    ]
    redis_keys = [limiter.redis_key("tenant-7", key, limit) for key, limit, _ in checks]
    try:
        assert len({cluster.keyslot(key) for key in redis_keys}) == 1
        for _ in range(2):
            assert all(d.allowed for d in await limiter.check_all("tenant-7", checks))
        denied = await limiter.check_all("tenant-7", checks)
        assert [d.allowed for d in denied] == [True, True, False]
        assert denied[0].remaining == 7  # as if consumed: 10 - 2 taken - this one
        assert await cluster.zcard(redis_keys[1]) == 2  # the log kept only the two allowed
        other = await limiter.check_all("tenant-8", checks)  # another tag, maybe another node
        assert all(d.allowed for d in other)
    finally:
        await cluster.delete(*redis_keys)
        await cluster.delete(*(limiter.redis_key("tenant-8", k, lim) for k, lim, _ in checks))
        await cluster.aclose()
