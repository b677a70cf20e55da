"""The Redis adapter: every decision is one atomic Lua script on Redis server time.

Pattern: one multi-algorithm script (`lua/limiter.lua`) decides any number of checks
in one round trip, all-or-nothing: if any check would be denied, none consumes. The
guarantee: with `now_us=None` the script reads Redis `TIME`, so every instance of the
service shares one clock and no client clock skew can widen a limit; and the script
returns exactly what `rate_limiter.models` specifies. The failures it handles: a
script cache flushed by a restart or failover (labs.lua reloads on NOSCRIPT), keys of
one request landing on different cluster nodes (every key carries the caller's hash
tag), and state that would outlive its use (every key gets a TTL).
"""

from collections.abc import Sequence

from redis.asyncio import Redis, RedisCluster

from labs.keys import KeyBuilder
from labs.lua import ScriptArg, load
from rate_limiter.domain import Decision, Limit, validate_cost

LIMITER = load("rate_limiter.lua", "limiter")
TTL_SLACK_MS = 1_000
"""Added to each key's TTL: a key expires a second after it stops mattering, so a
replica's slightly different clock, or a test driving explicit times, never sees state
vanish while it still counts."""


class RedisLimiter:
    """Rate limiting on Redis (standalone or cluster) with the five algorithms."""

    def __init__(self, redis: Redis | RedisCluster, keys: KeyBuilder) -> None:
        """Keep state in `redis`, under keys built by `keys`."""
        self._redis = redis
        self._keys = keys

    def redis_key(self, tag: str, key: str, limit: Limit) -> str:
        """Return where the state of `key` under `limit` lives: `prefix:{tag}:key:shape`.

        The shape (algorithm, limit, period, capacity) is part of the name, so two
        limits on one key never share state and a changed limit starts afresh.
        """
        shape = (limit.algorithm.value, limit.limit, limit.period_ms, limit.capacity)
        return self._keys.tagged(tag, key, *shape)

    async def check(
        self,
        key: str,
        limit: Limit,
        cost: int = 1,
        *,
        peek: bool = False,
        now_us: int | None = None,
    ) -> Decision:
        """Decide whether `cost` units of `key` may pass; consume them unless `peek`.

        `now_us=None` (production) makes the script read Redis `TIME`, the only clock.
        An explicit `now_us` replaces it, for the property tests that drive the script
        and the models with the same times, and for the clock-skew study's client-clock
        baselines. The key is its own hash tag, so `check(k)` is `check_all(k, [(k,...)])`.
        Raises `CostTooHigh` if `cost` exceeds the capacity (it could never pass).
        """
        [decision] = await self.check_all(key, [(key, limit, cost)], peek=peek, now_us=now_us)
        return decision

    async def check_all(
        self,
        tag: str,
        checks: Sequence[tuple[str, Limit, int]],
        *,
        peek: bool = False,
        now_us: int | None = None,
    ) -> list[Decision]:
        """Decide several (key, limit, cost) at once: all consume, or none does.

        One script, one round trip; every key is built with `keys.tagged(tag, ...)`, so
        on a cluster they share a slot. Each Decision says whether that check alone
        would pass; the checks consumed only if every one is allowed (and not `peek`).
        `now_us` is as in `check`: None reads Redis `TIME`; an explicit time is for
        property tests and the skew study's client-clock baselines.
        """
        if not tag:
            raise ValueError("a tag must not be empty (Redis would hash the whole key)")
        for _, limit, cost in checks:
            validate_cost(limit, cost)
        redis_keys = [self.redis_key(tag, key, limit) for key, limit, _ in checks]
        if len(set(redis_keys)) != len(redis_keys):
            raise ValueError("check_all got the same key and limit twice")
        if not checks:
            return []
        args: list[ScriptArg] = ["" if now_us is None else now_us, int(peek), TTL_SLACK_MS]
        for _, limit, cost in checks:
            args += _limit_args(limit, cost)
        reply = await LIMITER(self._redis, redis_keys, args)
        return [_decision(row) for row in reply]


def _limit_args(limit: Limit, cost: int) -> list[ScriptArg]:
    units, per_us = limit.rate
    return [
        limit.algorithm.value,
        limit.limit,
        limit.capacity,
        limit.period_us,
        units,
        per_us,
        cost,
    ]


def _decision(row: Sequence[int]) -> Decision:
    allowed, limit, remaining, reset_after_ms, retry_after_ms = map(int, row)
    return Decision(
        allowed=bool(allowed),
        limit=limit,
        remaining=remaining,
        reset_after_ms=reset_after_ms,
        retry_after_ms=retry_after_ms,
    )
