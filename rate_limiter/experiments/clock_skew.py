"""Clock skew study: how far five limiters stray from the exact allowance when clocks disagree.

The claim (portfolio): token buckets that refill from client timestamps accumulate
drift when hosts' clocks are skewed; deciding on Redis server time (`TIME` inside the
Lua script) removes the client clock entirely. Five implementations, all through
`RedisLimiter` and the same script, differ only in the clock they decide on:

- token bucket and GCRA on Redis `TIME` (`now_us=None`: the service as built);
- a token bucket and a sliding log on each client's own clock (an explicit `now_us`);
- a fixed window on each service instance's clock (the instance picks the window).

Method. Several real OS processes (spawn), each with its own event loop and limiter,
stand for service instances. In a scenario with skew S their clocks are offset evenly
over [-S, +S], and every clock read adds gaussian jitter (NTP-like, seeded). All of
them hit the same key per implementation, at a fixed offered rate above the limit,
paced on real time. Each request is also stamped on the one true clock (this
machine's `time.time()`, which is also what Redis `TIME` reads): its arrival is the
midpoint of send and receive. The **exact allowance** of a cell is what the pure
model (`rate_limiter.models`) admits when those same arrivals are replayed on the true
clock with no skew; the error is (admitted - exact) / exact: over-admission when
positive, under-admission when negative.

Resolution. A Redis execution time is known only to lie between send and receive, so
the replay can stray from what the server decided: for the bucket algorithms (whose
count, once the bucket is drained, is capacity + rate x (last - first) less a
fraction) by at most the refill over one round trip at each end plus one unit of
rounding at each end: `bucket_timing_tolerance`. Each cell reports its round trips
and how late its requests left against the schedule.

What to expect. The script never moves a key's time backwards (the bucket keeps the
later time, GCRA's TAT only grows, the log and the windows clamp to their newest
state), so a limiter fed several skewed clocks runs on the fastest one it has seen:
skew shifts its time by about +S once, early in the run, rather than adding up with
every request. Whether that holds, and what remains, is what this study measures.
"""

import asyncio
import gc
import multiprocessing
import queue
import random
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labs.clients import redis_client
from labs.demos import DemoContext, DemoOutcome
from labs.experiments import ExperimentContext, Size
from labs.keys import KeyBuilder
from labs.results import machine, save_results
from rate_limiter.domain import BUCKET_ALGORITHMS, Algorithm, Limit
from rate_limiter.models import model_for
from rate_limiter.store import RedisLimiter

if TYPE_CHECKING:
    from multiprocessing.queues import Queue

NAME = "clock-skew"
CLAIM = (
    "Token-bucket rate limiters that compute refill amounts using client-side timestamps "
    "accumulate systematic drift when hosts have clock skew; authoritative server-side "
    "timestamps (Redis server time via Lua) eliminate client clock dependence. Five "
    "implementations compared under 50 ms and 200 ms of injected skew."
)
SERVER_TIME_TOLERANCE_PCT = 2.0
"""The verdict's and the demo's stated bound on a Redis-time limiter's error under skew."""
US_PER_S = 1_000_000
READY_TIMEOUT_S = 90.0
START_DELAY_S = 0.3
RESULTS_SLACK_S = 120.0
MAX_CONNECTIONS = 2_000
"""Per client process: requests are sent on schedule however slow the answers, never
queued behind a pool limit (a stalled process shows as lag and long round trips)."""
WARM_CONNECTIONS = 32
"""Connections each client process opens before the first round."""


class Clock(StrEnum):
    """The clock a limiter decides on."""

    REDIS_TIME = "redis_time"
    CLIENT = "client_clock"
    SERVICE = "service_clock"


@dataclass(frozen=True)
class Implementation:
    """One limiter under study: an algorithm and the clock it decides on."""

    name: str
    algorithm: Algorithm
    clock: Clock
    label: str


IMPLEMENTATIONS: tuple[Implementation, ...] = (
    Implementation(
        "token_bucket/redis_time",
        Algorithm.TOKEN_BUCKET,
        Clock.REDIS_TIME,
        "token bucket, Redis TIME (ours)",
    ),
    Implementation(
        "token_bucket/client_clock",
        Algorithm.TOKEN_BUCKET,
        Clock.CLIENT,
        "token bucket, client clock",
    ),
    Implementation("gcra/redis_time", Algorithm.GCRA, Clock.REDIS_TIME, "GCRA, Redis TIME"),
    Implementation(
        "sliding_log/client_clock", Algorithm.SLIDING_LOG, Clock.CLIENT, "sliding log, client clock"
    ),
    Implementation(
        "fixed_window/service_clock",
        Algorithm.FIXED_WINDOW,
        Clock.SERVICE,
        "fixed window, service clock",
    ),
)


@dataclass(frozen=True)
class Parameters:
    """The size of a run: how long, how often, how many processes, which skews."""

    name: str
    duration_s: float
    repetitions: int
    processes: int = 4
    limit: int = 200
    period_ms: int = 1_000
    overload: float = 2.0
    skews_ms: tuple[int, ...] = (0, 50, 200)
    jitter_sd_ms: float = 0.5
    gap_s: float = 0.5

    def limit_for(self, algorithm: Algorithm) -> Limit:
        """Return the limit every implementation enforces (capacity = limit for buckets)."""
        return Limit(algorithm, self.limit, self.period_ms)

    @property
    def interval_s(self) -> float:
        """Return the pause between one process's requests to one key."""
        offered_per_s = self.limit * self.overload * 1_000 / self.period_ms
        return self.processes / offered_per_s

    @property
    def ticks(self) -> int:
        """Return how many requests each process sends to each key in a round."""
        return round(self.duration_s / self.interval_s)

    @property
    def round_s(self) -> float:
        """Return the time from one round's start to the next one's."""
        return self.duration_s + self.gap_s

    def offsets_us(self, skew_ms: int) -> list[int]:
        """Return each process's clock offset: spread evenly over [-skew, +skew]."""
        if self.processes == 1:
            return [0]
        skew_us = skew_ms * 1_000
        last = self.processes - 1
        return [round(-skew_us + 2 * skew_us * index / last) for index in range(self.processes)]

    def describe(self) -> str:
        """Return the size in a few words, for captions and summaries."""
        offered = self.limit * self.overload
        return (
            f"{self.name}: {self.repetitions}x{self.duration_s:g} s per cell, "
            f"{self.processes} processes, limit {self.limit}/{self.period_ms} ms, "
            f"offered {offered:g}/{self.period_ms} ms, jitter sd {self.jitter_sd_ms:g} ms"
        )


QUICK = Parameters("quick", duration_s=1.5, repetitions=1)
FULL = Parameters("full", duration_s=10.0, repetitions=3)
SIZES: dict[Size, Parameters] = {Size.QUICK: QUICK, Size.FULL: FULL}
DEMO = replace(QUICK, name="demo", skews_ms=(0, 200))


@dataclass(frozen=True)
class Round:
    """One scenario at one repetition: every implementation runs in it, side by side."""

    skew_ms: int
    repetition: int

    def key(self, implementation: Implementation) -> str:
        """Return the limiter key (and cell name) of `implementation` in this round."""
        return f"{implementation.name}:{self.skew_ms}ms:r{self.repetition}"


@dataclass(frozen=True)
class WorkerJob:
    """What one client process runs: every round, at times the orchestrator sets."""

    index: int
    redis_url: str
    prefix: str
    parameters: Parameters
    rounds: tuple[Round, ...]
    seed: int


Sample = tuple[int, int, int, bool]
"""One request: (scheduled, sent, received) in µs on the true clock, and whether allowed."""
Samples = dict[str, list[Sample]]
"""Requests by cell key."""


@dataclass(frozen=True)
class Cell:
    """One implementation in one round: what it admitted against the exact allowance."""

    implementation: str
    skew_ms: int
    repetition: int
    requests: int
    admitted: int
    exact: int
    span_s: float
    rtt_p50_ms: float
    rtt_p99_ms: float
    rtt_max_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    timing_tolerance_units: float | None

    @property
    def excess_units(self) -> int:
        """Return admitted - exact: positive is over-admission, negative under-admission."""
        return self.admitted - self.exact

    @property
    def error_pct(self) -> float:
        """Return the excess as a percentage of the exact allowance."""
        return 100 * self.excess_units / self.exact


def exact_allowance(limit: Limit, arrivals_us: Sequence[int]) -> int:
    """Return how many unit requests the model admits at `arrivals_us` on one true clock."""
    model = model_for(limit)
    return sum(model.check(now_us).allowed for now_us in sorted(arrivals_us))


def bucket_timing_tolerance(limit: Limit, rtt_max_us: int) -> float:
    """Return how far a drained bucket's count can move when each time is known within a RTT.

    A drained bucket's count is capacity + rate x (last - first) less under one unit (plus
    the refill over one gap between arrivals, under one unit when offered above the rate).
    Each Redis execution time lies within its request's round trip, and the replay uses
    the midpoint, so `first` and `last` are each off by at most half the longest round
    trip: together rate x rtt_max, plus one unit of rounding at each end.
    """
    units, per_us = limit.rate
    return 2 + units * rtt_max_us / per_us


def _true_us() -> int:
    return time.time_ns() // 1_000


def _worker(
    job: WorkerJob,
    ready: "Queue[tuple[int, str]]",
    start: "Queue[float]",
    results: "Queue[tuple[int, Samples, str]]",
) -> None:
    """Run one client process: report ready, wait for the start time, run every round."""
    try:
        samples = asyncio.run(_work(job, ready, start))
    except Exception as exc:  # noqa: BLE001 - reported to the orchestrator, which fails the run
        ready.put((job.index, repr(exc)))
        results.put((job.index, {}, repr(exc)))
        return
    results.put((job.index, samples, ""))


async def _work(job: WorkerJob, ready: "Queue[tuple[int, str]]", start: "Queue[float]") -> Samples:
    client = redis_client(job.redis_url, max_connections=MAX_CONNECTIONS)
    limiter = RedisLimiter(client, KeyBuilder(job.prefix))
    try:
        # peeks store nothing; they load the script and open the pool's connections, so
        # the first round pays neither for a NOSCRIPT nor for connection handshakes
        warm_up = job.parameters.limit_for(Algorithm.GCRA)
        await asyncio.gather(
            *(limiter.check("warm-up", warm_up, peek=True) for _ in range(WARM_CONNECTIONS))
        )
        ready.put((job.index, ""))
        begin = await asyncio.to_thread(start.get, timeout=READY_TIMEOUT_S)
        jitter = random.Random(job.seed * 1_000 + job.index)
        samples: Samples = {}
        for number, round_ in enumerate(job.rounds):
            round_start = begin + number * job.parameters.round_s
            gc.collect()  # between rounds, so that no collection pauses a round's pacing
            gc.disable()
            try:
                samples |= await _round(limiter, job, round_, round_start, jitter)
            finally:
                gc.enable()
    finally:
        await client.aclose()
    return samples


async def _round(
    limiter: RedisLimiter,
    job: WorkerJob,
    round_: Round,
    start_s: float,
    jitter: random.Random,
) -> Samples:
    """Send each implementation's requests at a fixed pace, recording the true times."""
    parameters = job.parameters
    offset_us = parameters.offsets_us(round_.skew_ms)[job.index]
    jitter_sd_us = parameters.jitter_sd_ms * 1_000
    samples: Samples = {round_.key(implementation): [] for implementation in IMPLEMENTATIONS}

    async def one(implementation: Implementation, scheduled_us: int) -> None:
        sent = _true_us()
        now_us = None
        if implementation.clock is not Clock.REDIS_TIME:  # this host's clock reading
            now_us = sent + offset_us + round(jitter.gauss(0, jitter_sd_us))
        limit = parameters.limit_for(implementation.algorithm)
        decision = await limiter.check(round_.key(implementation), limit, now_us=now_us)
        samples[round_.key(implementation)].append(
            (scheduled_us, sent, _true_us(), decision.allowed)
        )

    # processes are staggered so that together they arrive evenly spaced
    first = start_s + parameters.interval_s * job.index / parameters.processes
    pending: list[asyncio.Task[None]] = []
    for tick in range(parameters.ticks):
        scheduled = first + tick * parameters.interval_s
        await asyncio.sleep(max(0.0, scheduled - time.time()))  # yields even when late
        scheduled_us = round(scheduled * US_PER_S)
        pending += [
            asyncio.create_task(one(implementation, scheduled_us))
            for implementation in IMPLEMENTATIONS
        ]
    await asyncio.gather(*pending)
    return samples


class ExperimentError(RuntimeError):
    """A client process failed, so the run measured nothing."""


def _run_workers(job: WorkerJob, progress: Callable[[str], None]) -> Samples:
    """Spawn the client processes (`job` for each index), start them together, merge."""
    context = multiprocessing.get_context("spawn")
    ready: Queue[tuple[int, str]] = context.Queue()
    start: Queue[float] = context.Queue()
    results: Queue[tuple[int, Samples, str]] = context.Queue()
    workers = [
        context.Process(
            target=_worker, args=(replace(job, index=index), ready, start, results), daemon=True
        )
        for index in range(job.parameters.processes)
    ]
    for worker in workers:
        worker.start()
    finished = False
    try:
        for _ in workers:
            index, error = ready.get(timeout=READY_TIMEOUT_S)
            if error:
                raise ExperimentError(f"client process {index} could not start: {error}")
        begin = time.time() + START_DELAY_S
        for _ in workers:
            start.put(begin)
        _announce_rounds(job, begin, progress)
        merged = _collect(results, len(workers), job.parameters.round_s + RESULTS_SLACK_S)
        finished = True
    except queue.Empty as exc:
        codes = [worker.exitcode for worker in workers]
        raise ExperimentError(f"a client process stopped answering (exit codes {codes})") from exc
    finally:
        for worker in workers:  # each one we started, by its handle
            worker.join(timeout=30 if finished else 0)  # having reported, they exit at once
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=10)
    return merged


def _collect(results: "Queue[tuple[int, Samples, str]]", count: int, timeout_s: float) -> Samples:
    """Merge the samples of `count` client processes, failing on the first error."""
    merged: Samples = {}
    for _ in range(count):
        index, part, error = results.get(timeout=timeout_s)
        if error:
            raise ExperimentError(f"client process {index} failed: {error}")
        for key, rows in part.items():
            merged.setdefault(key, []).extend(rows)
    return merged


def _announce_rounds(job: WorkerJob, begin: float, progress: Callable[[str], None]) -> None:
    """Report each round as it starts (the client processes keep the schedule themselves)."""
    parameters = job.parameters
    for number, round_ in enumerate(job.rounds):
        time.sleep(max(0.0, begin + number * parameters.round_s - time.time()))
        progress(
            f"round {number + 1}/{len(job.rounds)}: {round_.skew_ms} ms skew, "
            f"repetition {round_.repetition + 1}, {parameters.duration_s:g} s"
        )


def _quantile(ordered: Sequence[int], fraction: float) -> int:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _ms(duration_us: int) -> float:
    return round(duration_us / 1_000, 3)


def cell_from_samples(
    implementation: Implementation, round_: Round, parameters: Parameters, samples: list[Sample]
) -> Cell:
    """Compare what was admitted with what the model admits for the same true arrivals."""
    limit = parameters.limit_for(implementation.algorithm)
    arrivals = sorted((sent + received) // 2 for _, sent, received, _ in samples)
    rtts = sorted(received - sent for _, sent, received, _ in samples)
    lags = sorted(sent - scheduled for scheduled, sent, _, _ in samples)
    rtt_max = rtts[-1]
    tolerance = None
    if implementation.algorithm in BUCKET_ALGORITHMS:
        tolerance = round(bucket_timing_tolerance(limit, rtt_max), 2)
    return Cell(
        implementation=implementation.name,
        skew_ms=round_.skew_ms,
        repetition=round_.repetition,
        requests=len(samples),
        admitted=sum(allowed for _, _, _, allowed in samples),
        exact=exact_allowance(limit, arrivals),
        span_s=round((arrivals[-1] - arrivals[0]) / US_PER_S, 3),
        rtt_p50_ms=_ms(_quantile(rtts, 0.5)),
        rtt_p99_ms=_ms(_quantile(rtts, 0.99)),
        rtt_max_ms=_ms(rtt_max),
        lag_p99_ms=_ms(_quantile(lags, 0.99)),
        lag_max_ms=_ms(lags[-1]),
        timing_tolerance_units=tolerance,
    )


async def measure(
    redis_url: str, parameters: Parameters, seed: int, progress: Callable[[str], None]
) -> list[Cell]:
    """Run every round on the real Redis and return one cell per implementation and round."""
    rounds = tuple(
        Round(skew_ms, repetition)
        for repetition in range(parameters.repetitions)
        for skew_ms in parameters.skews_ms
    )
    prefix = f"clock-skew-{uuid.uuid4().hex[:10]}"
    progress(
        f"{parameters.processes} client processes, {len(IMPLEMENTATIONS)} limiters side by side, "
        f"{len(rounds)} rounds ({parameters.describe()})"
    )
    samples = await asyncio.to_thread(
        _run_workers, WorkerJob(0, redis_url, prefix, parameters, rounds, seed), progress
    )
    await _delete_keys(redis_url, prefix)
    return [
        cell_from_samples(implementation, round_, parameters, samples[round_.key(implementation)])
        for round_ in rounds
        for implementation in IMPLEMENTATIONS
    ]


async def _delete_keys(redis_url: str, prefix: str) -> None:
    """Delete the run's keys now rather than waiting for their TTLs."""
    client = redis_client(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
        if keys:
            await client.unlink(*keys)
    finally:
        await client.aclose()


def table(cells: Sequence[Cell], parameters: Parameters) -> list[dict[str, Any]]:
    """Return one row per implementation and skew: the error's mean and spread over runs."""
    rows = []
    for implementation in IMPLEMENTATIONS:
        for skew_ms in parameters.skews_ms:
            runs = [
                cell
                for cell in cells
                if cell.implementation == implementation.name and cell.skew_ms == skew_ms
            ]
            errors = [cell.error_pct for cell in runs]
            mean = statistics.fmean(errors)
            rows.append(
                {
                    "implementation": implementation.name,
                    "label": implementation.label,
                    "algorithm": implementation.algorithm.value,
                    "clock": implementation.clock.value,
                    "skew_ms": skew_ms,
                    "error_pct_mean": round(mean, 3),
                    "error_pct_min": round(min(errors), 3),
                    "error_pct_max": round(max(errors), 3),
                    "error_pct_sd": round(statistics.stdev(errors), 3) if len(errors) > 1 else 0.0,
                    "direction": "over" if mean > 0 else "under" if mean < 0 else "exact",
                    "admitted_mean": round(statistics.fmean(cell.admitted for cell in runs), 1),
                    "exact_mean": round(statistics.fmean(cell.exact for cell in runs), 1),
                    "excess_units_mean": round(
                        statistics.fmean(cell.excess_units for cell in runs), 2
                    ),
                    "runs": [
                        asdict(cell)
                        | {"excess_units": cell.excess_units, "error_pct": round(cell.error_pct, 3)}
                        for cell in runs
                    ],
                }
            )
    return rows


def _row(rows: Sequence[dict[str, Any]], name: str, skew_ms: int) -> dict[str, Any]:
    return next(row for row in rows if row["implementation"] == name and row["skew_ms"] == skew_ms)


def _figure(row: dict[str, Any]) -> str:
    mean, low, high = row["error_pct_mean"], row["error_pct_min"], row["error_pct_max"]
    spread = f" ({low:+.2f}..{high:+.2f})" if len(row["runs"]) > 1 else ""
    return f"{mean:+.2f}%{spread}"


def verdict(rows: Sequence[dict[str, Any]], parameters: Parameters) -> dict[str, Any]:
    """Judge the claim at the largest skew: server time within the tolerance, client drift."""
    skew_ms = max(parameters.skews_ms)
    server = [row for row in rows if row["clock"] == Clock.REDIS_TIME and row["skew_ms"] == skew_ms]
    worst_server = max(
        abs(value) for row in server for value in (row["error_pct_min"], row["error_pct_max"])
    )
    client_bucket = _row(rows, "token_bucket/client_clock", skew_ms)
    worst_client = max(abs(client_bucket["error_pct_min"]), abs(client_bucket["error_pct_max"]))
    return {
        "skew_ms": skew_ms,
        "tolerance_pct": SERVER_TIME_TOLERANCE_PCT,
        "server_time_worst_abs_error_pct": worst_server,
        "server_time_within_tolerance": worst_server <= SERVER_TIME_TOLERANCE_PCT,
        "client_clock_token_bucket_worst_abs_error_pct": worst_client,
        "client_clock_token_bucket_drift_beyond_tolerance": worst_client
        > SERVER_TIME_TOLERANCE_PCT,
    }


def summarize(rows: Sequence[dict[str, Any]], parameters: Parameters) -> str:
    """Return one line: the measured figures at the largest skew, next to the claim."""
    judged = verdict(rows, parameters)
    skew_ms = judged["skew_ms"]
    tolerance = f"±{SERVER_TIME_TOLERANCE_PCT:g}%"
    server = (
        f"within {tolerance}: held"
        if judged["server_time_within_tolerance"]
        else f"outside {tolerance}: MISSED"
    )
    drift = (
        f"client-clock drift appeared (token bucket beyond {tolerance})"
        if judged["client_clock_token_bucket_drift_beyond_tolerance"]
        else f"the claimed client-clock drift was not reproduced (token bucket within {tolerance})"
    )

    def figure(name: str) -> str:
        return _figure(_row(rows, name, skew_ms))

    return (
        f"at {skew_ms} ms skew ({parameters.name}, {parameters.repetitions}x"
        f"{parameters.duration_s:g} s per cell), admitted vs the exact allowance: Redis-TIME "
        f"token bucket {figure('token_bucket/redis_time')}, GCRA {figure('gcra/redis_time')} "
        f"({server}); client-clock token bucket "
        f"{figure('token_bucket/client_clock')}, client-clock sliding log "
        f"{figure('sliding_log/client_clock')}, service-clock fixed window "
        f"{figure('fixed_window/service_clock')}; {drift}"
    )


def write_plot(path: Path, rows: Sequence[dict[str, Any]], parameters: Parameters) -> None:
    """Draw grouped bars: implementation x skew, the error in % with its range over runs."""
    import matplotlib as mpl  # noqa: PLC0415 - only the orchestrator plots; clients never import it

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    skews = parameters.skews_ms
    width = 0.8 / len(skews)
    figure, axes = plt.subplots(figsize=(11, 5.5))
    axes.axhspan(
        -SERVER_TIME_TOLERANCE_PCT,
        SERVER_TIME_TOLERANCE_PCT,
        color="0.92",
        zorder=0,
        label=f"±{SERVER_TIME_TOLERANCE_PCT:g}%: the tolerance stated for Redis TIME",
    )
    for position, skew_ms in enumerate(skews):
        chosen = [_row(rows, item.name, skew_ms) for item in IMPLEMENTATIONS]
        means = [row["error_pct_mean"] for row in chosen]
        spread = [
            [row["error_pct_mean"] - row["error_pct_min"] for row in chosen],
            [row["error_pct_max"] - row["error_pct_mean"] for row in chosen],
        ]
        offsets = [
            index + (position - (len(skews) - 1) / 2) * width for index in range(len(chosen))
        ]
        bars = axes.bar(
            offsets, means, width, yerr=spread, capsize=3, label=f"{skew_ms} ms skew", zorder=2
        )
        axes.bar_label(bars, labels=[f"{mean:+.2f}" for mean in means], fontsize=7, padding=2)
    axes.axhline(0, color="black", linewidth=0.8)
    labels = [item.label.replace(", ", "\n") for item in IMPLEMENTATIONS]
    axes.set_xticks(range(len(IMPLEMENTATIONS)), labels)
    axes.set_ylabel("(admitted - exact) / exact, %\n> 0 over-admission, < 0 under-admission")
    axes.set_title("Rate limiter accuracy under client clock skew (Redis TIME vs host clocks)")
    axes.legend(loc="upper left", fontsize=8)
    host = machine()
    cells = [cell for row in rows for cell in row["runs"]]
    rtt_p50 = statistics.median(cell["rtt_p50_ms"] for cell in cells)
    rtt_max = max(cell["rtt_max_ms"] for cell in cells)
    caption = (
        f"{parameters.describe()}; bars: mean over runs, whiskers: min..max; "
        f"exact = the pure model replaying the same arrivals on the true clock; "
        f"round trips: median {rtt_p50:.1f} ms, longest {rtt_max:.0f} ms.\n"
        f"Machine: {host['cpu']}, {host['cores']} cores, {host['os']}"
    )
    figure.text(0.01, 0.01, caption, fontsize=7, wrap=True)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


async def run_experiment(context: ExperimentContext, parameters: Parameters) -> str:
    """Measure at `parameters`' size, write the results file and plot, return the summary."""
    started = time.perf_counter()
    cells = await measure(
        context.urls.require("redis_url"), parameters, context.seed, context.progress
    )
    rows = table(cells, parameters)
    summary = summarize(rows, parameters)
    payload = {
        "claim": CLAIM,
        "parameters": asdict(parameters),
        "implementations": [
            {"name": item.name, "algorithm": item.algorithm.value, "clock": item.clock.value}
            for item in IMPLEMENTATIONS
        ],
        "exact_allowance": (
            "what the pure model admits for the same arrivals (midpoint of send and receive "
            "on the machine's clock) replayed with no skew"
        ),
        "table": rows,
        "verdict": verdict(rows, parameters),
        "summary": summary,
        "measure_seconds": round(time.perf_counter() - started, 1),
    }
    save_results(
        context.results_dir,
        NAME,
        payload,
        servers=context.urls,
        seed=context.seed,
        size=parameters.name,
    )
    write_plot(context.results_dir / f"{NAME}.png", rows, parameters)
    return summary


async def run(context: ExperimentContext) -> str:
    """Run the study at the context's size (`lab experiment clock-skew [--full]`)."""
    return await run_experiment(context, SIZES[context.size])


async def demo(context: DemoContext) -> DemoOutcome:
    """`lab demo clock-skew`: 0 vs 200 ms skew, quick; proved if Redis time stays exact."""
    cells = await measure(
        context.urls.require("redis_url"), DEMO, seed=7, progress=context.progress
    )
    rows = table(cells, DEMO)
    judged = verdict(rows, DEMO)
    skew_ms = judged["skew_ms"]

    def figure(name: str) -> str:
        return _figure(_row(rows, name, skew_ms))

    tolerance = f"±{SERVER_TIME_TOLERANCE_PCT:g}%"
    summary = (
        f"{DEMO.processes} processes with clocks offset over ±{skew_ms} ms, "
        f"{DEMO.limit * DEMO.overload:g}/s against {DEMO.limit}/s for {DEMO.duration_s:g} s: "
        f"Redis-TIME token bucket {figure('token_bucket/redis_time')}, GCRA "
        f"{figure('gcra/redis_time')} of the exact allowance (tolerance {tolerance}); "
        f"client-clock token bucket {figure('token_bucket/client_clock')}, sliding log "
        f"{figure('sliding_log/client_clock')}, service-clock fixed window "
        f"{figure('fixed_window/service_clock')}"
    )
    return DemoOutcome(proved=bool(judged["server_time_within_tolerance"]), summary=summary)
