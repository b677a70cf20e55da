"""In-process decisions: what one rate-limit check costs, next to the cheapest EVALSHA.

No HTTP: `RedisLimiter.check` is called directly on the Redis the services use, with
the limit and the workload of the Locust run (benchmarks/workload.py), and a no-op
EVALSHA (`return 1`, benchmarks/noop.lua) is the ceiling: no decision made through a
Lua script can be cheaper. Both are measured with one call in flight (the round trip)
and with `concurrency` calls in flight (decisions per second), in alternating rounds
so that drift on a shared machine touches both alike. Every decision is also checked
against the workload's exact prediction.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from benchmarks.timing import latency_summary
from benchmarks.workload import KeyStream, Shape
from labs.clients import redis_client
from labs.keys import KeyBuilder
from labs.lua import LuaScript, ScriptArg, load
from rate_limiter.domain import Algorithm, Limit
from rate_limiter.store import LIMITER, TTL_SLACK_MS, RedisLimiter

NOOP = load("benchmarks", "noop")
_WARM_UP_CALLS = 200
_NS_PER_MS = 1_000_000
_MODES = ("sequential", "concurrent")

Call = Callable[[], Awaitable[None]]


@dataclass
class Series:
    """Round-trip times and elapsed wall time, accumulated over rounds."""

    latencies_ms: list[float]
    calls: int = 0
    seconds: float = 0.0
    server_calls: int = 0
    server_usec: float = 0.0

    def add(self, latencies_ms: list[float], seconds: float) -> None:
        """Add one round."""
        self.latencies_ms += latencies_ms
        self.calls += len(latencies_ms)
        self.seconds += seconds

    def summary(self) -> dict[str, Any]:
        """Return calls per second and the round-trip percentiles."""
        summary: dict[str, Any] = {
            "calls": self.calls,
            "per_s": round(self.calls / self.seconds, 1) if self.seconds else None,
            "rt_ms": latency_summary(self.latencies_ms),
        }
        if self.server_calls:
            summary["server_usec_per_call"] = round(self.server_usec / self.server_calls, 2)
        return summary


async def _evalsha_stats(client: Redis) -> tuple[int, float]:
    """Return the server's EVALSHA count and total microseconds (INFO commandstats)."""
    stats = (await client.info("commandstats")).get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)), float(stats.get("usec", 0))


async def _sequential_round(client: Redis, call: Call, count: int, series: Series) -> None:
    """One call in flight, `count` times; also what the server spent on those EVALSHAs."""
    calls_before, usec_before = await _evalsha_stats(client)
    await _round([call], count, series)
    calls_after, usec_after = await _evalsha_stats(client)
    series.server_calls += calls_after - calls_before
    series.server_usec += usec_after - usec_before


async def _timed(call: Call, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter_ns()
        await call()
        latencies.append((time.perf_counter_ns() - started) / _NS_PER_MS)
    return latencies


async def _round(calls: list[Call], per_call: int, series: Series) -> None:
    """Run `per_call` timed calls through each of `calls` at once (one in flight each)."""
    started = time.perf_counter()
    results = await asyncio.gather(*(_timed(call, per_call) for call in calls))
    series.add([latency for result in results for latency in result], time.perf_counter() - started)


class _Decider:
    """Checks the workload's keys and counts decisions that differ from the exact ones."""

    def __init__(self, limiter: RedisLimiter, limit: Limit, stream: KeyStream) -> None:
        self.limiter, self.limit, self.stream = limiter, limit, stream
        self.calls = 0
        self.allowed = 0
        self.mismatches = 0

    async def __call__(self) -> None:
        step = self.stream.next()
        decision = await self.limiter.check(step.key, self.limit)
        self.calls += 1
        self.allowed += decision.allowed
        if decision.allowed != step.allowed or decision.remaining != step.remaining:
            self.mismatches += 1


class _Script:
    """A diagnostic call: limiter.lua with prebuilt arguments, skipping the adapter.

    With `script=NOOP` it sends the no-op the very KEYS and ARGV a decision sends.
    """

    def __init__(
        self,
        client: Redis,
        limiter: RedisLimiter,
        limit: Limit,
        stream: KeyStream,
        script: LuaScript = LIMITER,
    ) -> None:
        self.client, self.limiter, self.limit, self.stream = client, limiter, limit, stream
        self.script = script
        units, per_us = limit.rate
        self.args: list[ScriptArg] = [
            "", 0, TTL_SLACK_MS, limit.algorithm.value, limit.limit, limit.capacity,
            limit.period_us, units, per_us, 1,
        ]  # fmt: skip

    async def __call__(self) -> None:
        name = self.stream.next().key
        key = self.limiter.redis_key(name, name, self.limit)
        await self.script(self.client, [key], self.args)


async def measure(
    redis_url: str,
    *,
    shape: Shape,
    algorithm: Algorithm,
    ops: int,
    rounds: int,
    concurrency: int,
    seed: int,
    prefix: str,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Measure decisions and no-op EVALSHAs, `ops` calls per round and mode, `rounds` times."""
    client: Redis = redis_client(redis_url, max_connections=concurrency + 8)
    limiter = RedisLimiter(client, KeyBuilder(prefix))
    limit = Limit(algorithm, shape.limit, shape.period_s * 1000)

    def stream(name: str) -> KeyStream:
        return KeyStream(name, f"{seed}:inproc:{name}", shape)

    deciders = [_Decider(limiter, limit, stream(f"w{n}")) for n in range(concurrency)]

    async def noop() -> None:
        await NOOP(client)

    main: dict[str, list[Call]] = {"noop": [noop] * concurrency, "decision": list(deciders)}
    diagnostics: dict[str, Call] = {
        "noop_with_args": _Script(client, limiter, limit, stream("a"), NOOP),
        "script": _Script(client, limiter, limit, stream("s")),
    }
    series = {(kind, mode): Series([]) for kind in main for mode in _MODES}
    series |= {(kind, "sequential"): Series([]) for kind in diagnostics}
    try:
        warm = Series([])
        for calls in main.values():
            await _round(calls, _WARM_UP_CALLS // concurrency + 1, warm)
        for number in range(rounds):
            order = list(main) if number % 2 == 0 else list(main)[::-1]
            for kind in order:
                await _sequential_round(client, main[kind][0], ops, series[kind, "sequential"])
                await _round(main[kind], max(1, ops // concurrency), series[kind, "concurrent"])
            for kind, call in diagnostics.items():
                await _sequential_round(client, call, ops, series[kind, "sequential"])
            progress(f"in-process round {number + 1}/{rounds}")
    finally:
        await client.aclose()
    result: dict[str, Any] = {
        "algorithm": str(algorithm),
        "limit": shape.limit,
        "period_s": shape.period_s,
        "ops_per_round": ops,
        "rounds": rounds,
        "concurrency": concurrency,
    }
    for kind, mode in series:
        result.setdefault(kind, {})[mode] = series[kind, mode].summary()
    result["decision"]["checked"] = {
        "decisions": sum(d.calls for d in deciders),
        "allowed": sum(d.allowed for d in deciders),
        "mismatches": sum(d.mismatches for d in deciders),
    }
    result["ratios"] = _ratios(result)
    return result


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def _ratios(result: dict[str, Any]) -> dict[str, float | None]:
    def rt(kind: str, stat: str = "p50") -> float | None:
        value: float | None = result[kind]["sequential"]["rt_ms"][stat]
        return value

    concurrent = result["decision"]["concurrent"]["per_s"], result["noop"]["concurrent"]["per_s"]
    return {
        "rt_p50": _ratio(rt("decision"), rt("noop")),
        "rt_mean": _ratio(rt("decision", "mean"), rt("noop", "mean")),
        "rt_p99": _ratio(rt("decision", "p99"), rt("noop", "p99")),
        "per_s_concurrent": _ratio(*concurrent),
        "noop_with_args_rt_p50": _ratio(rt("noop_with_args"), rt("noop")),
        "script_rt_p50": _ratio(rt("script"), rt("noop")),
    }
