"""One `lab bench scheduler` run: every system, one after the other, on the same Redis.

The systems run in `rounds` (the order rotated each round, so none always goes first
on a machine whose other load comes and goes); throughputs are the median of the
rounds, latencies pooled over them (`stats.summarize`). In each round, for each
system, in a namespace of its own on the same Redis and with nothing else of the run
still running:

1. **enqueue**: a warm-up batch (not timed), then `jobs` no-op jobs timed, with no
   worker running, through the system's fastest documented enqueue (a batch API, or
   a concurrent loop);
2. **process**: `workers` worker processes start on that backlog; throughput runs
   from the start of the last warm-up job to the start of the last job;
3. **idle pickup**: `idle_jobs` jobs one at a time, each enqueued only after the
   previous one started and a seeded pause, so the queue is empty each time;
4. **loaded pickup**: jobs enqueued at a steady `loaded_rate` for `loaded_seconds`
   while the workers process them;

then its workers get SIGTERM, every start is accounted for (`stats.account`: a lost
job voids the run), and its keys (and, for ours, its audit rows) are deleted.
"""

import asyncio
import contextlib
import itertools
import json
import os
import random
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from benchmarks.harness import CpuWatch, Processes, Progress, delete_keys, spawn, stop
from benchmarks.scheduler import recorder, stats
from benchmarks.scheduler.plot import plot
from benchmarks.scheduler.system import Enqueuer, Setup, System
from labs.clients import redis_client
from labs.errors import LabError
from labs.results import save_results
from labs.servers.process import last_error_line
from labs.settings import ServerUrls

_PROGRESS_EVERY_S = 3.0
_POLL_S = 0.005
_STALL_S = 30.0
"""No new start for this long while jobs are outstanding: the system lost them."""
_ENQUEUE_CHUNK = 1_000
PACKAGES = ("redis", "hiredis", "saq", "taskiq", "taskiq-redis", "streaq", "coredis")


@dataclass(frozen=True)
class Profile:
    """How big a run is, and the process shape every system gets."""

    name: str
    jobs: int
    warmup: int
    idle_jobs: int
    loaded_rate: float
    loaded_seconds: float
    rounds: int = 1
    workers: int = 2
    concurrency: int = 10
    idle_pause_ms: tuple[float, float] = (10.0, 210.0)
    """A seeded pause before each idle job, over two of our 100 ms poll periods, so jobs
    arrive at random points of a polling worker's sleep, not just after it woke."""


class Starts:
    """The run's start list in Redis, read incrementally: who started, when."""

    def __init__(self, redis: Redis, key: str) -> None:
        """Read the list `key` on `redis`."""
        self._redis = redis
        self.key = key
        self._read = 0
        self.stamps: dict[int, list[int]] = {}

    async def refresh(self) -> None:
        """Read the entries pushed since the last call."""
        entries = await self._redis.lrange(self.key, self._read, -1)
        self._read += len(entries)
        for index, stamps in recorder.parse_starts(entries).items():
            self.stamps.setdefault(index, []).extend(stamps)

    async def wait_for(
        self,
        indexes: Sequence[int],
        label: str,
        progress: Progress,
        workers: "Workers",
        need: int | None = None,
    ) -> None:
        """Wait until every job in `indexes` (or `need` of them) started; raise on a stall."""
        wanted = set(indexes)
        last_change, seen, next_report = time.monotonic(), -1, time.monotonic()
        while True:
            await self.refresh()
            done = len(wanted & self.stamps.keys())
            if done >= (len(wanted) if need is None else need):
                return
            now = time.monotonic()
            if done != seen:
                last_change, seen = now, done
            elif now - last_change > _STALL_S:
                raise LabError(
                    f"{label}: {len(wanted) - done} of {len(wanted)} jobs never started "
                    f"within {_STALL_S:.0f} s of the last start; {workers.health()}"
                )
            if now >= next_report:
                progress(f"{label}: {done:,}/{len(wanted):,} started")
                next_report = now + _PROGRESS_EVERY_S
            await asyncio.sleep(_POLL_S)


@dataclass
class Workers:
    """A system's worker processes for one run."""

    children: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def health(self) -> str:
        """Say which processes exited, with the last error their log shows."""
        dead = [
            f"{log.name} exited ({child.returncode}): {last_error_line(log)}"
            for child, log in zip(self.children, self.logs, strict=True)
            if child.poll() is not None
        ]
        return "; ".join(dead) or "every worker process is still running"


@contextlib.contextmanager
def _workers(
    system: System, setup: Setup, starts_key: str, raw_dir: Path, processes: Processes
) -> Iterator[Workers]:
    env = {
        **os.environ,
        recorder.REDIS_URL_ENV: setup.redis_url,
        recorder.STARTS_KEY_ENV: starts_key,
        **system.environment(setup),
    }
    workers = Workers([], [])
    try:
        for number, command in enumerate(system.worker_commands(setup)):
            log = raw_dir / f"worker-{number}.log"
            workers.children.append(spawn(command, env, log, processes, f"{system.name} {number}"))
            workers.logs.append(log)
        yield workers
    finally:
        for child in workers.children:
            stop(child)


async def _timed_enqueue(enqueuer: Enqueuer, indexes: Sequence[int]) -> int:
    """Enqueue `indexes` in chunks; return the nanoseconds it took."""
    began = time.perf_counter_ns()
    for first in range(0, len(indexes), _ENQUEUE_CHUNK):
        await enqueuer.enqueue_many(indexes[first : first + _ENQUEUE_CHUNK])
    return time.perf_counter_ns() - began


async def _idle_pickup(
    enqueuer: Enqueuer,
    indexes: Sequence[int],
    starts: Starts,
    *,
    rng: random.Random,
    profile: Profile,
    workers: Workers,
    progress: Progress,
) -> dict[int, int]:
    """Enqueue one job at a time onto an empty queue; return each one's enqueue stamp."""
    enqueued: dict[int, int] = {}
    low, high = profile.idle_pause_ms
    for index in indexes:
        await asyncio.sleep(rng.uniform(low, high) / 1000)
        enqueued[index] = time.time_ns()
        await enqueuer.enqueue_one(index)
        await starts.wait_for([index], "idle pickup", progress, workers)
    return enqueued


async def _loaded_pickup(
    enqueuer: Enqueuer, indexes: Sequence[int], rate: float
) -> tuple[dict[int, int], float | None]:
    """Enqueue at a steady `rate`, each call on its own; return the stamps and the rate reached."""
    enqueued: dict[int, int] = {}
    sending: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    began = loop.time()
    for number, index in enumerate(indexes):
        await asyncio.sleep(max(0.0, began + number / rate - loop.time()))
        enqueued[index] = time.time_ns()
        sending.add(asyncio.create_task(enqueuer.enqueue_one(index)))
    await asyncio.gather(*sending)
    stamps = sorted(enqueued.values())
    return enqueued, stats.per_second(len(stamps) - 1, stamps[-1] - stamps[0])


@dataclass(frozen=True)
class _Plan:
    """Which job indexes each phase uses: consecutive ranges, so every job is accounted for."""

    warmup: range
    backlog: range
    idle: range
    loaded: range

    @classmethod
    def of(cls, profile: Profile) -> "_Plan":
        loaded = round(profile.loaded_rate * profile.loaded_seconds)
        bounds = itertools.accumulate((profile.warmup, profile.jobs, profile.idle_jobs, loaded))
        return cls(*(range(a, b) for a, b in itertools.pairwise((0, *bounds))))

    @property
    def every(self) -> range:
        return range(self.loaded.stop)


async def _measure(
    system: System,
    setup: Setup,
    profile: Profile,
    *,
    rng: random.Random,
    raw_dir: Path,
    processes: Processes,
    progress: Progress,
) -> dict[str, Any]:
    plan = _Plan.of(profile)
    client = redis_client(setup.redis_url)
    starts = Starts(client, f"bench-starts:{setup.namespace}")
    name = system.name
    try:
        async with system.enqueuer(setup) as enqueuer:
            progress(f"{name}: enqueueing {len(plan.warmup):,} warm-up + {profile.jobs:,} jobs")
            await _timed_enqueue(enqueuer, plan.warmup)
            enqueue_ns = await _timed_enqueue(enqueuer, plan.backlog)
            progress(f"{name}: {stats.per_second(profile.jobs, enqueue_ns)} jobs/s enqueued")
            with _workers(system, setup, starts.key, raw_dir, processes) as workers:
                backlog = range(plan.backlog.stop)
                cpu = CpuWatch({f"workers-{n}": c.pid for n, c in enumerate(workers.children)})
                label = f"{name} processing"
                await starts.wait_for(backlog, label, progress, workers, need=profile.warmup)
                cpu.sample()
                await starts.wait_for(backlog, label, progress, workers)
                cpu.sample()
                process = stats.process_throughput(
                    [min(starts.stamps[index]) for index in backlog], profile.warmup
                )
                process["cpu"] = stats.cpu_use(cpu.shares(), process)
                progress(f"{name}: {process['per_s']} jobs/s processed; idle pickup")
                idle = await _idle_pickup(
                    enqueuer,
                    plan.idle,
                    starts,
                    rng=rng,
                    profile=profile,
                    workers=workers,
                    progress=progress,
                )
                progress(f"{name}: loaded pickup at {profile.loaded_rate:g} jobs/s")
                loaded, reached = await _loaded_pickup(enqueuer, plan.loaded, profile.loaded_rate)
                await starts.wait_for(plan.loaded, f"{name} loaded", progress, workers)
        await starts.refresh()
        jobs = stats.account(name, plan.every, starts.stamps)
    finally:
        await client.aclose()
    return {
        "jobs": jobs,
        "enqueue": {
            "jobs": profile.jobs,
            "seconds": round(enqueue_ns / 1e9, 3),
            "per_s": stats.per_second(profile.jobs, enqueue_ns),
        },
        "process": process,
        "idle_ms": stats.pickup_ms(idle, starts.stamps),
        "loaded_ms": stats.pickup_ms(loaded, starts.stamps),
        "loaded_reached_per_s": reached,
    }


def _schedule(systems: Sequence[System], rounds: int) -> Iterator[tuple[int, System]]:
    """Every system once per round, the order rotated each round: none always runs first."""
    for number in range(rounds):
        shift = number % len(systems)
        for system in (*systems[shift:], *systems[:shift]):
            yield number, system


def run_systems(
    systems: Sequence[System],
    profile: Profile,
    *,
    seed: int,
    urls: ServerUrls,
    out_dir: Path,
    progress: Progress,
    reproduce: str,
) -> Path:
    """Measure every system in rounds; write `<out_dir>/<stamp>.json` and `.png`; return it."""
    began = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    raw_root = out_dir / "raw" / stamp
    processes = Processes()
    rng = random.Random(seed)
    rounds: dict[str, list[dict[str, Any]]] = {system.name: [] for system in systems}
    load_before = os.getloadavg()
    redis_url = urls.require("redis_url")
    base = Setup(
        redis_url=redis_url,
        database_url=urls.require("database_url"),
        namespace=f"bench-{stamp.lower()}",
        workers=profile.workers,
        concurrency=profile.concurrency,
    )
    for number, system in _schedule(systems, profile.rounds):
        name = system.name.replace("+", "-")
        setup = replace(base, namespace=f"{base.namespace}-{name}-{number}")
        progress(f"round {number + 1}/{profile.rounds}, {system.name}: {system.summary}")
        try:
            rounds[system.name].append(
                asyncio.run(
                    _measure(
                        system,
                        setup,
                        profile,
                        rng=rng,
                        raw_dir=raw_root / f"{system.name}-{number}",
                        processes=processes,
                        progress=progress,
                    )
                )
            )
        finally:
            patterns = [*system.key_patterns(setup), f"bench-starts:{setup.namespace}"]
            asyncio.run(delete_keys(redis_url, *patterns))
            asyncio.run(system.cleanup(setup))
    measured = {
        system.name: {
            "summary": system.summary,
            "enqueue_api": system.enqueue_api,
            "knobs": system.knobs(base),
            **stats.summarize(rounds[system.name], profile.loaded_rate),
        }
        for system in systems
    }
    results = {
        "systems": measured,
        "ratios": stats.ratios(measured),
        "goals": stats.judge(measured),
        "processes_left": processes.alive(),
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        "seconds": round(time.monotonic() - began, 1),
    }
    path = save_results(
        out_dir,
        stamp,
        results,
        servers=urls,
        packages=PACKAGES,
        target="scheduler",
        profile={**asdict(profile), "seed": seed},
        setup={
            "redis": "one Valkey for every system, each in its own key namespace, "
            "its keys deleted before the next system runs",
            "clock": "enqueuer and workers on one machine: time.time_ns() is one clock",
            "recording": "each task calls benchmarks.scheduler.recorder.started(index)",
        },
        raw=str(raw_root.relative_to(out_dir)),
        reproduce=reproduce,
    )
    plot(json.loads(path.read_text()), path.with_suffix(".png"))
    return path
