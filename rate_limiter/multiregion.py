"""Rate limiting across regions: three ways to share one limit, and what each costs.

Each region has its own Redis; regions reach each other over a slow link. One counter
script serves all three modes (a fixed window whose count is a G-counter: one field
per region, summed), so the modes differ only in where a check goes and what is
copied between regions:
- `local`: each region checks its own Redis and nothing is shared. Fast, and wrong:
  with R regions a key can get up to R times its limit. The baseline.
- `strict`: every key has a home region, and every check goes to the home's Redis.
  Exact, at the price of a cross-region round trip for callers away from home, and no
  decisions for that key while its home is unreachable.
- `eventual`: each region checks its own Redis, and every sync interval sends its own
  count of each active key to the others, merged by max (idempotent, order-free).
  Fast like `local`; over-admits by what the other regions admit during one sync
  interval plus the link delay, which the multi-region experiment measures.
"""

import asyncio
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from labs.clock import Clock
from labs.keys import KeyBuilder
from labs.lua import ScriptArg, load

COUNTER = load("rate_limiter.lua", "region_counter")
MERGE = load("rate_limiter.lua", "region_merge")
_TTL_SLACK_MS = 1_000


class Mode(StrEnum):
    """How regions share a limit."""

    LOCAL = "local"
    STRICT = "strict"
    EVENTUAL = "eventual"


@dataclass(frozen=True)
class RegionalDecision:
    """One region's answer: allowed or not, the window's count as seen, and who decided."""

    allowed: bool
    counted: int
    decided_in: str
    window: int  # the fixed window the units were counted in (Redis TIME / period)


def home_region(key: str, regions: list[str]) -> str:
    """Return the region that owns `key` in strict mode (a stable hash of the key)."""
    ordered = sorted(regions)
    return ordered[zlib.crc32(key.encode()) % len(ordered)]


class RegionalLimiter:
    """A fixed-window limit of `limit` per `period_ms`, as one region enforces it."""

    def __init__(
        self,
        region: str,
        links: Mapping[str, Redis],
        mode: Mode,
        keys: KeyBuilder,
        *,
        limit: int,
        period_ms: int,
    ) -> None:
        """`links` maps every region (this one included) to a client that reaches its Redis."""
        self.region = region
        self._links = dict(links)
        self._mode = mode
        self._keys = keys
        self._limit = limit
        self._period_us = period_ms * 1000
        self._active: set[str] = set()

    async def check(
        self, key: str, cost: int = 1, *, now_us: int | None = None
    ) -> RegionalDecision:
        """Decide `cost` units of `key` the way this limiter's mode says.

        `now_us=None` reads the deciding Redis's TIME; an explicit time is for tests.
        """
        target = home_region(key, list(self._links)) if self._mode is Mode.STRICT else self.region
        now: ScriptArg = "" if now_us is None else now_us
        args: list[ScriptArg] = [self.region, cost, self._limit, self._period_us, now]
        allowed, counted, _, window = await COUNTER(
            self._links[target], [self._keys.key(key)], args
        )
        if self._mode is Mode.EVENTUAL:
            self._active.add(key)
        return RegionalDecision(bool(allowed), int(counted), target, int(window))

    async def sync_once(self) -> int:
        """Send this region's count of every key active since the last sync; return how many."""
        active, self._active = self._active, set()
        local = self._links[self.region]
        peers = [client for name, client in self._links.items() if name != self.region]
        ttl_ms = self._period_us // 1000 + _TTL_SLACK_MS
        redis_keys = [self._keys.key(key) for key in active]
        async with local.pipeline(transaction=False) as pipe:
            for redis_key in redis_keys:
                _ = pipe.hmget(redis_key, ["w", self.region])
            counts = await pipe.execute()  # one round trip for every active key
        merges = [
            MERGE(peer, [redis_key], [self.region, int(window), int(count or 0), ttl_ms])
            for redis_key, (window, count) in zip(redis_keys, counts, strict=True)
            if window is not None
            for peer in peers
        ]
        await asyncio.gather(*merges)
        return len(active)

    async def keep_in_sync(self, clock: Clock, interval_s: float) -> None:
        """Sync forever, every `interval_s` (eventual mode's background task)."""
        while True:
            await clock.sleep(interval_s)
            await self.sync_once()
