"""Multi-region experiment: how far each mode over-admits, and what each decision costs.

Three regions, each with its own real Valkey server, joined by delay proxies (one per
direction of each pair) that add 20 to 150 ms one way. Every region offers the whole
limit per window on one hot key (three times the limit in total), open-loop, for
several windows aligned to the window boundaries. Measured per mode, delay and sync
interval: the units admitted beyond the limit, counted per window in the window the
deciding Redis put them in (so a decision that a loaded machine delays into the next
window is not mistaken for over-admission), against the allowance (limit x windows);
and the decision latency that callers see (p50, p99). Writes `multi-region.json` and
`.png`.
"""

import asyncio
import shutil
import tempfile
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from redis.asyncio import BlockingConnectionPool, Redis

from labs.clock import SystemClock
from labs.experiments import ExperimentContext, Size
from labs.keys import KeyBuilder
from labs.netem import delayed
from labs.results import machine, save_results
from labs.servers import Fleet
from labs.tasks import background
from rate_limiter.multiregion import Mode, RegionalLimiter

REGIONS = ("eu", "us", "ap")
_POOL = 64  # connections per link (about 30 decisions are in flight at 150 ms one way)
HOT_KEY = "hot"


@dataclass(frozen=True)
class Grid:
    """What one run covers."""

    delays_ms: tuple[int, ...]
    sync_intervals_ms: tuple[int, ...]
    windows: int
    period_ms: int = 1_000
    limit: int = 100


GRIDS = {
    Size.QUICK: Grid(delays_ms=(20, 150), sync_intervals_ms=(10, 1_000), windows=2),
    Size.FULL: Grid(delays_ms=(20, 75, 150), sync_intervals_ms=(10, 100, 1_000), windows=5),
}


@dataclass(frozen=True)
class Cell:
    """One measured combination."""

    mode: str
    delay_ms: int
    sync_ms: int | None
    admitted: int
    allowance: int
    over_limit: int  # units admitted beyond the limit, summed over windows
    over_admission_pct: float
    p50_ms: float
    p99_ms: float


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


async def _regions(
    ports: dict[str, int], delay_ms: int, stack: AsyncExitStack
) -> dict[str, dict[str, Any]]:
    """Return, for each region, a client per region: its own direct, the others delayed."""
    links: dict[str, dict[str, Any]] = {}
    for here in REGIONS:
        links[here] = {}
        for there in REGIONS:
            port = ports[there]
            if there != here:
                proxy = await stack.enter_async_context(delayed("127.0.0.1", port, delay_ms / 1000))
                port = proxy.port
            pool = BlockingConnectionPool.from_url(
                f"redis://127.0.0.1:{port}/0",
                max_connections=_POOL,
                timeout=10,
                socket_timeout=10,
                socket_connect_timeout=10,
            )
            client = Redis.from_pool(pool)  # owns the pool: aclose() closes it
            stack.push_async_callback(client.aclose)
            # Open the pool now: a connection's handshake is not part of a decision.
            await asyncio.gather(*(client.ping() for _ in range(_POOL)))
            links[here][there] = client
    return links


async def run_cell(
    ports: dict[str, int], mode: Mode, delay_ms: int, sync_ms: int | None, grid: Grid
) -> Cell:
    """Offer 3x the limit across the regions for `grid.windows` windows; measure."""
    keys = KeyBuilder(f"mr-{uuid.uuid4().hex[:8]}")
    latencies: list[float] = []
    admitted_by_window: Counter[int] = Counter()
    async with AsyncExitStack() as stack:
        links = await _regions(ports, delay_ms, stack)
        limiters = [
            RegionalLimiter(r, links[r], mode, keys, limit=grid.limit, period_ms=grid.period_ms)
            for r in REGIONS
        ]
        syncing = (
            [lim.keep_in_sync(SystemClock(), sync_ms / 1000) for lim in limiters] if sync_ms else []
        )
        await stack.enter_async_context(background(*syncing))

        async def one(limiter: RegionalLimiter) -> None:
            started = time.perf_counter()
            decision = await limiter.check(HOT_KEY)
            latencies.append((time.perf_counter() - started) * 1000)
            admitted_by_window[decision.window] += decision.allowed

        period_s = grid.period_ms / 1000
        await asyncio.sleep(period_s - time.time() % period_s + 0.005)  # start on a window boundary
        begin = time.monotonic()
        # Stop offering early enough that every decision lands inside the last window.
        span_s = grid.windows * period_s - 2 * delay_ms / 1000 - 0.05
        gap_s = period_s / grid.limit
        arrivals = int(span_s / gap_s)
        tasks = []
        for index in range(arrivals):
            await asyncio.sleep(max(0.0, begin + index * gap_s - time.monotonic()))
            tasks += [asyncio.create_task(one(limiter)) for limiter in limiters]
        await asyncio.gather(*tasks)
    allowance = grid.limit * grid.windows
    over_limit = sum(max(0, units - grid.limit) for units in admitted_by_window.values())
    return Cell(
        mode=mode.value,
        delay_ms=delay_ms,
        sync_ms=sync_ms,
        admitted=admitted_by_window.total(),
        allowance=allowance,
        over_limit=over_limit,
        over_admission_pct=round(100 * over_limit / allowance, 1),
        p50_ms=round(_percentile(latencies, 0.50), 2),
        p99_ms=round(_percentile(latencies, 0.99), 2),
    )


def _plan(grid: Grid) -> list[tuple[Mode, int, int | None]]:
    plan: list[tuple[Mode, int, int | None]] = []
    for delay in grid.delays_ms:
        plan += [(Mode.LOCAL, delay, None), (Mode.STRICT, delay, None)]
        plan += [(Mode.EVENTUAL, delay, sync) for sync in grid.sync_intervals_ms]
    return plan


def plot(cells: list[Cell], grid: Grid, path: Path, caption: str) -> None:
    """Plot over-admission by sync interval (local and strict for scale) and decision p99."""
    figure = Figure(figsize=(11, 4.2))
    left, right = figure.subplots(1, 2)
    for delay in grid.delays_ms:
        eventual = [c for c in cells if c.mode == "eventual" and c.delay_ms == delay]
        left.plot(
            [c.sync_ms for c in eventual],
            [c.over_admission_pct for c in eventual],
            marker="o",
            label=f"eventual, {delay} ms one way",
        )
    local = [c.over_admission_pct for c in cells if c.mode == "local"]
    left.axhline(sum(local) / len(local), color="tab:red", linestyle="--", label="local only")
    left.axhline(0, color="black", linewidth=0.8, label="strict (exact)")
    left.set(
        xscale="log",
        xlabel="sync interval (ms)",
        ylabel="over-admission (%)",
        title="Units admitted beyond the limit",
    )
    left.legend(fontsize=8, loc="center right")
    modes = ["local", "strict", "eventual"]
    width = 0.8 / len(grid.delays_ms)
    for offset, delay in enumerate(grid.delays_ms):
        p99 = [
            max((c.p99_ms for c in cells if c.mode == m and c.delay_ms == delay), default=0)
            for m in modes
        ]
        right.bar(
            [i + offset * width for i in range(len(modes))], p99, width, label=f"{delay} ms one way"
        )
    center = width * (len(grid.delays_ms) - 1) / 2
    right.set_xticks([i + center for i in range(len(modes))], modes)
    right.set(ylabel="decision p99 (ms)", title="What a caller waits")
    right.legend(fontsize=8)
    figure.text(0.01, 0.01, caption, fontsize=7, color="gray")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    figure.savefig(path, dpi=120)


async def run(context: ExperimentContext) -> str:
    """Run the grid of the context's size; see `run_grid`."""
    return await run_grid(context, GRIDS[context.size])


async def run_grid(context: ExperimentContext, grid: Grid) -> str:
    """Run `grid` on three fresh Valkey servers and write the results and plot."""
    directories = [Path(tempfile.mkdtemp(prefix=f"lab-region-{r}-")) for r in REGIONS]
    fleets = [Fleet(directory, environ={}) for directory in directories]
    try:
        ports = {}
        for region, fleet in zip(REGIONS, fleets, strict=True):
            (status,) = await fleet.up(only={"redis"})
            ports[region] = int(status.record.url.rsplit(":", 1)[1].split("/")[0])
        cells = []
        for mode, delay, sync in _plan(grid):
            context.progress(
                f"{mode} mode, {delay} ms one way" + (f", sync every {sync} ms" if sync else "")
            )
            cells.append(await run_cell(ports, mode, delay, sync, grid))
    finally:
        for fleet, directory in zip(fleets, directories, strict=True):
            fleet.down(purge=True)
            shutil.rmtree(directory, ignore_errors=True)
    payload = {"grid": asdict(grid), "cells": [asdict(cell) for cell in cells]}
    save_results(
        context.results_dir,
        "multi-region",
        payload,
        servers=context.urls,
        size=context.size.value,
        seed=context.seed,
    )
    info = machine()
    caption = f"{context.size} run, {info['cores']} cores, {info['cpu']}"
    plot(cells, grid, context.results_dir / "multi-region.png", caption)
    return summarize(cells)


def summarize(cells: list[Cell]) -> str:
    """One line: each mode's worst over-admission and p99 at the largest delay."""
    worst_delay = max(cell.delay_ms for cell in cells)
    parts = []
    for mode in ("local", "strict", "eventual"):
        mine = [c for c in cells if c.mode == mode]
        over = max(c.over_admission_pct for c in mine)
        p99 = max(c.p99_ms for c in mine if c.delay_ms == worst_delay)
        parts.append(
            f"{mode} over-admits up to {over:+.1f}% (p99 {p99:.1f} ms at {worst_delay} ms)"
        )
    return "; ".join(parts)
