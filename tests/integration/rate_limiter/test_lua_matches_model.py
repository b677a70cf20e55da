"""The Lua script decides exactly as the models specify, on the real Redis."""

import asyncio
import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from labs.clients import redis_client
from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from labs.testing.pytest_plugin import unique
from rate_limiter.domain import Algorithm, CostTooHigh, Decision, Limit
from rate_limiter.models import check_all, model_for
from rate_limiter.store import TTL_SLACK_MS, RedisLimiter

# hypothesis caches source constants on disk even with database=None: not in the repo
PROPERTIES = settings(max_examples=40, deadline=None, derandomize=True, database=None)
SECOND = 1_000_000


class Driver:
    """Runs a RedisLimiter on its own event loop, so hypothesis can drive it synchronously."""

    def __init__(self, runner: asyncio.Runner, client: Redis, keys: KeyBuilder) -> None:
        """Drive a limiter on `client` from `runner`'s loop."""
        self.runner, self.client, self.keys = runner, client, keys
        self.limiter = RedisLimiter(client, keys)
        self._names = itertools.count()

    def fresh_key(self) -> str:
        """Return a key no earlier example used."""
        return f"k{next(self._names)}"


@pytest.fixture(scope="module")
def driver(lab_urls: ServerUrls) -> Iterator[Driver]:
    """A limiter on the session's Redis with a prefix of its own, cleaned up at the end."""
    with asyncio.Runner() as runner:
        client = redis_client(lab_urls.require("redis_url"))
        keys = KeyBuilder(unique("rlprop"))
        try:
            yield Driver(runner, client, keys)
        finally:
            runner.run(_delete_prefix(client, keys.prefix))
            runner.run(client.aclose())


async def _delete_prefix(client: Redis, prefix: str) -> None:
    stale = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if stale:
        await client.unlink(*stale)


@st.composite
def limits(draw: st.DrawFn, algorithm: Algorithm) -> Limit:
    """Small limits (so denials happen) with periods from 1 ms to a minute."""
    burst = None
    if algorithm in {Algorithm.TOKEN_BUCKET, Algorithm.GCRA}:
        burst = draw(st.none() | st.integers(1, 15))
    return Limit(
        algorithm,
        draw(st.integers(1, 10)),
        draw(st.sampled_from([1, 3, 7, 100, 999, 1000, 60_000])),
        burst,
    )


# time steps: mostly forward (µs to a couple of periods), sometimes back a little
deltas = st.one_of(
    st.integers(0, 2_000),
    st.integers(0, 200_000),
    st.integers(0, 2 * 60 * SECOND),
    st.integers(-2_000, -1),
)
steps = st.lists(st.tuples(deltas, st.integers(1, 15), st.booleans()), min_size=1, max_size=25)
starts = st.integers(1_600_000_000 * SECOND, 1_900_000_000 * SECOND)


def lua_matches_model(
    driver: Driver, limit: Limit, start: int, history: list[tuple[int, int, bool]]
) -> None:
    """Drive the script and the model with the same times; every Decision must be equal."""
    model, key, now = model_for(limit), driver.fresh_key(), start
    for delta, wanted, peek in history:
        now += delta
        cost = min(wanted, limit.capacity)
        expected = model.check(now, cost, peek=peek)
        actual = driver.runner.run(driver.limiter.check(key, limit, cost, peek=peek, now_us=now))
        assert actual == expected, f"at step now={now} cost={cost} peek={peek}"


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_lua_decides_exactly_as_the_model(driver: Driver, algorithm: Algorithm) -> None:
    """Random limits and random (time step, cost, peek) sequences: identical Decisions."""

    @PROPERTIES
    @given(limit=limits(algorithm), start=starts, history=steps)
    def run(limit: Limit, start: int, history: list[tuple[int, int, bool]]) -> None:
        lua_matches_model(driver, limit, start, history)

    run()


@PROPERTIES
@given(
    batch=st.lists(
        st.sampled_from(list(Algorithm)).flatmap(limits), min_size=1, max_size=4, unique=True
    ),
    start=starts,
    history=st.lists(st.tuples(deltas, st.booleans()), min_size=1, max_size=12),
    costs=st.lists(st.integers(1, 10), min_size=4, max_size=4),
)
def test_check_all_decides_exactly_as_the_models(
    driver: Driver,
    batch: list[Limit],
    start: int,
    history: list[tuple[int, bool]],
    costs: list[int],
) -> None:
    """Batches of mixed algorithms on one tag: the script's all-or-nothing equals the models'."""
    tag, now = driver.fresh_key(), start
    models = [model_for(limit) for limit in batch]
    for delta, peek in history:
        now += delta
        checks = [
            (f"r{i}", limit, min(cost, limit.capacity))
            for i, (limit, cost) in enumerate(zip(batch, costs, strict=False))
        ]
        expected = check_all(
            [(model, cost) for model, (_, _, cost) in zip(models, checks, strict=True)],
            now,
            peek=peek,
        )
        actual = driver.runner.run(driver.limiter.check_all(tag, checks, peek=peek, now_us=now))
        assert actual == expected


@pytest.fixture
def limiter(redis: Redis, keys: KeyBuilder) -> RedisLimiter:
    """A limiter on the test's own key prefix."""
    return RedisLimiter(redis, keys)


async def test_check_all_one_denied_means_none_consumed(
    redis: Redis, limiter: RedisLimiter
) -> None:
    """A batch with one exhausted limit is denied whole: the other keys keep every unit."""
    second = Limit(Algorithm.SLIDING_LOG, 5, 1000)
    day = Limit(Algorithm.FIXED_WINDOW, 2, 86_400_000)
    checks = [("user", second, 1), ("user", day, 1)]
    assert all(d.allowed for d in await limiter.check_all("u1", checks))
    assert all(d.allowed for d in await limiter.check_all("u1", checks))
    denied = await limiter.check_all("u1", checks)
    assert [d.allowed for d in denied] == [True, False]
    assert await redis.zcard(limiter.redis_key("u1", "user", second)) == 2
    assert (await limiter.check("other", second, 5)).allowed  # an unrelated tag is separate


async def test_every_key_gets_a_ttl(redis: Redis, limiter: RedisLimiter) -> None:
    """Each key expires a slack after the limiter would be full again: idle keys vanish."""
    for algorithm in Algorithm:
        limit = Limit(algorithm, 10, 60_000)
        decision = await limiter.check("ttl", limit, 3)
        ttl_ms = await redis.pttl(limiter.redis_key("ttl", "ttl", limit))
        assert decision.reset_after_ms < ttl_ms <= decision.reset_after_ms + TTL_SLACK_MS


async def test_peek_and_denials_store_nothing(redis: Redis, limiter: RedisLimiter) -> None:
    """A peek on a fresh key, and a denied check, leave no key behind."""
    limit = Limit(Algorithm.TOKEN_BUCKET, 2, 1000)
    await limiter.check("quiet", limit, 2, peek=True)
    await limiter.check("quiet", limit, 2, now_us=1)
    await limiter.check("quiet", limit, 1, now_us=1)  # denied: the key must keep its state
    await limiter.check("quiet", limit, 2, peek=True, now_us=2)
    assert await redis.hget(limiter.redis_key("quiet", "quiet", limit), "time") == b"1"
    await limiter.check("fresh", limit, 1, peek=True)
    assert await redis.exists(limiter.redis_key("fresh", "fresh", limit)) == 0


async def test_bad_requests_fail_before_reaching_redis(limiter: RedisLimiter) -> None:
    """A cost above capacity, an empty tag or a repeated (key, limit) raise at once."""
    limit = Limit(Algorithm.GCRA, 3, 1000)
    with pytest.raises(CostTooHigh):
        await limiter.check("k", limit, 4)
    with pytest.raises(ValueError, match="tag must not be empty"):
        await limiter.check_all("", [("k", limit, 1)])
    with pytest.raises(ValueError, match="twice"):
        await limiter.check_all("t", [("k", limit, 1), ("k", limit, 2)])
    assert await limiter.check_all("t", []) == []


async def server_time_us(redis: Redis) -> int:
    """Return Redis TIME in microseconds."""
    seconds, micros = await redis.time()
    return int(seconds) * SECOND + int(micros)


async def test_production_mode_refills_by_redis_time(redis: Redis, limiter: RedisLimiter) -> None:
    """Two checks without explicit time: the refill between them is what Redis TIME allows."""
    limit = Limit(Algorithm.TOKEN_BUCKET, 1000, 1000)  # one token per ms
    before = await server_time_us(redis)
    drained = await limiter.check("prod", limit, 1000)
    again = await limiter.check("prod", limit, 1000, peek=True)
    spent = await server_time_us(redis) - before
    assert drained == Decision(
        allowed=True, limit=1000, remaining=0, reset_after_ms=1000, retry_after_ms=0
    )
    assert spent < SECOND, "the two checks took a second: the bounds below assume less"
    # the peek saw 0..spent µs of refill: a token per 1000 µs, the rest still missing
    assert not again.allowed
    assert (SECOND - spent + 999) // 1000 <= again.reset_after_ms <= 1000
    assert again.retry_after_ms == again.reset_after_ms


async def test_production_mode_reads_the_server_clock_not_the_callers(
    redis: Redis, limiter: RedisLimiter
) -> None:
    """State written at explicit times 10 s off is judged on Redis TIME afterwards."""
    limit = Limit(Algorithm.GCRA, 10, 1000)  # T = 100 ms
    server = await server_time_us(redis)
    assert (await limiter.check("ahead", limit, 10, now_us=server + 10 * SECOND)).allowed
    denied = await limiter.check("ahead", limit)
    spent = await server_time_us(redis) - server
    # TAT is server + 11 s; one more T must fit within the 1 s burst: retry = 10.1 s - spent
    assert not denied.allowed
    assert 10_100 - spent // 1000 - 1 <= denied.retry_after_ms <= 10_100
    assert (await limiter.check("behind", limit, 10, now_us=server - 10 * SECOND)).allowed
    assert (await limiter.check("behind", limit, 10)).allowed  # 10 s of server time refilled it
