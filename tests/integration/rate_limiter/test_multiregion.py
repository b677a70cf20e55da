"""Three regions sharing one limit: local over-admits, strict is exact, eventual converges."""

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from labs.clients import redis_client
from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from rate_limiter.multiregion import MERGE, Mode, RegionalLimiter, home_region

REGIONS = ["eu", "us", "ap"]
NOW = 1_800_000_000_000_000  # µs; a fixed time keeps every check in one window
PERIOD_MS = 3_600_000
LIMIT = 10


@pytest.fixture
async def links(lab_urls: ServerUrls, keys: KeyBuilder) -> AsyncIterator[dict[str, Redis]]:
    """Each region's Redis: three databases of the session server, apart as regions are."""
    base = lab_urls.require("redis_url").rsplit("/", 1)[0]
    clients = {region: redis_client(f"{base}/{index + 1}") for index, region in enumerate(REGIONS)}
    yield clients
    for client in clients.values():
        await client.delete(keys.key("hot"))
        await client.aclose()


def limiters(links: dict[str, Redis], keys: KeyBuilder, mode: Mode) -> dict[str, RegionalLimiter]:
    """One limiter per region, all in `mode`, LIMIT units per hour."""
    return {
        region: RegionalLimiter(region, links, mode, keys, limit=LIMIT, period_ms=PERIOD_MS)
        for region in REGIONS
    }


async def admitted(limiter: RegionalLimiter, attempts: int) -> int:
    """How many of `attempts` single-unit checks on the hot key pass."""
    return sum([(await limiter.check("hot", now_us=NOW)).allowed for _ in range(attempts)])


async def test_local_mode_lets_each_region_spend_the_whole_limit(
    links: dict[str, Redis], keys: KeyBuilder
) -> None:
    """With nothing shared, three regions admit three times the limit."""
    regional = limiters(links, keys, Mode.LOCAL)
    assert [await admitted(regional[r], 15) for r in REGIONS] == [LIMIT, LIMIT, LIMIT]


async def test_strict_mode_is_exact_and_decides_at_home(
    links: dict[str, Redis], keys: KeyBuilder
) -> None:
    """Every region's checks go to the key's home: exactly the limit, in total."""
    regional = limiters(links, keys, Mode.STRICT)
    totals = [await admitted(regional[r], 15) for r in REGIONS]
    assert sum(totals) == LIMIT
    decision = await regional["ap"].check("hot", now_us=NOW)
    assert decision.decided_in == home_region("hot", REGIONS)


async def test_eventual_mode_over_admits_until_a_sync_then_converges(
    links: dict[str, Redis], keys: KeyBuilder
) -> None:
    """Before a sync each region sees only itself; after one, every region sees the total."""
    regional = limiters(links, keys, Mode.EVENTUAL)
    assert await admitted(regional["eu"], 6) == 6
    assert await admitted(regional["us"], 6) == 6  # eu's 6 are not known in us yet
    for limiter in regional.values():
        await limiter.sync_once()
    assert await admitted(regional["ap"], 5) == 0  # ap now counts 12 of 10
    decision = await regional["ap"].check("hot", now_us=NOW)
    assert decision.counted == 12
    assert decision.window == NOW // (PERIOD_MS * 1000)


async def test_merge_is_idempotent_and_ignores_older_windows(
    links: dict[str, Redis], keys: KeyBuilder
) -> None:
    """Max-merge: sending a count twice changes nothing; a count for an old window is refused."""
    redis_key = keys.key("hot")
    target = links["us"]
    window = NOW // (PERIOD_MS * 1000)
    assert await MERGE(target, [redis_key], ["eu", window, 4, 60_000]) == 1
    assert await MERGE(target, [redis_key], ["eu", window, 4, 60_000]) == 1
    assert await MERGE(target, [redis_key], ["eu", window, 3, 60_000]) == 1
    assert await target.hget(redis_key, "eu") == b"4"
    assert await MERGE(target, [redis_key], ["eu", window - 1, 9, 60_000]) == 0
