"""`lab experiment chaos`: at-least-once delivery through SIGKILLs and a rolling restart.

Claims under test: at-least-once delivery with no job lost when workers are killed,
none lost or duplicated by a deployment (a rolling restart drains each worker), a hard
cap of 5 attempts after which a job lands in the PostgreSQL dead-letter queue, and
Redis memory that stays flat while a downstream fails for good and the DLQ grows.

Method. A fresh PostgreSQL database and Redis key prefix per run; several real worker
processes (`scheduler.experiments.workers`) run the chaos handlers, which write every
execution start to a ledger before working (`scheduler.experiments.ledger`). A
producer enqueues the jobs at an even pace, holding back while a full round of slots is
ready (so no backlog hides how fast killed jobs come back): mostly noops and short
sleeps, some flaky (fail with p = 0.3), some that always fail, with a short retry
backoff. While it runs, workers chosen by a seeded `random.Random` are SIGKILLed at
random moments (placed by how much was produced), each replaced by a new process; then
every worker is restarted in turn with SIGTERM. Once the queue is empty, a second phase
enqueues only always-failing jobs with 4 KiB payloads while Redis `used_memory` and the
DLQ rows are sampled. Finally the workers drain, and the checker
(`scheduler.experiments.checker`) judges the evidence; every check, passed or failed,
goes into `chaos.json`, and the plot into `chaos.png`.

The plan and the job mix are in `chaos_plan`, the summary, results file and plot in
`chaos_report`. What the first runs found (audit records lost on SIGKILL, a heartbeat
racing an ack) and how it was fixed is in the README, "What it found, and what changed".
"""

import asyncio
import contextlib
import random
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.clients import redis_client, sql_engine
from labs.experiments import ExperimentContext
from labs.keys import KeyBuilder
from labs.paths import state_dir
from labs.results import save_results
from labs.tasks import background
from scheduler.domain import DEFAULT_MAX_ATTEMPTS
from scheduler.experiments import ledger
from scheduler.experiments.chaos_plan import (
    DLQ_PAYLOAD_BYTES,
    NAME,
    PLANS,
    QUEUE,
    RETRY_BASE_MS,
    RETRY_CAP_MS,
    JobSpec,
    Plan,
    Report,
    Restart,
    Timeline,
    dlq_specs,
    job_specs,
    record,
)
from scheduler.experiments.chaos_report import payload, plot, summarize
from scheduler.experiments.checker import (
    Evidence,
    FinalState,
    MemorySample,
    check_memory_bounded,
    check_run,
    redelivery_times,
    spread,
)
from scheduler.experiments.workers import (
    WorkerExitedError,
    WorkerOptions,
    WorkerProcess,
    WorkerProcesses,
)
from scheduler.queue import RedisQueue
from scheduler.store import dead_table, ensure_schema, jobs_table

ENQUEUE_CONCURRENCY = 64
TICK_S = 0.05
"""The producer's pace: it enqueues what is due every tick."""
DRAIN_EVERY_S = 0.2
SAMPLE_EVERY_S = 0.5
SETTLE_POLL_S = 0.2
KILLS_BETWEEN = (0.15, 0.5)
"""Kills happen at random moments while this share of the jobs is being enqueued..."""
RESTART_AT = 0.55
"""...and the rolling restart starts once this share is."""
EXISTS_BATCH = 5_000
PROGRESS_EVERY_S = 5.0
LAST_AUDIT_EVENTS = text(
    "SELECT DISTINCT ON (job_id) job_id, event FROM scheduler_audit"
    " ORDER BY job_id, at DESC, id DESC"
)
"""Each job's last audit event by event time: flushes from several workers interleave rows."""
START_TIMEOUT_S = 60.0
"""How long a new worker may take to connect (or the first ones to run a job)."""


class Producer:
    """Enqueues jobs at an even pace, holding back while `max_waiting` jobs are ready.

    The back-pressure keeps the ready set short whatever the machine's speed, so a
    killed worker's jobs come back after its lease, not behind a backlog, and the
    run's moments (kills, restart) are placed by how much was produced, not by the clock.
    """

    def __init__(
        self,
        queue: RedisQueue,
        specs: Sequence[JobSpec],
        duration_s: float,
        max_waiting: int,
        progress: Callable[[str], None],
    ) -> None:
        """Enqueue `specs` on `queue`, no faster than evenly over `duration_s`."""
        self._queue = queue
        self._specs = specs
        self._duration_s = duration_s
        self._max_waiting = max_waiting
        self._progress = progress
        self._advanced = asyncio.Condition()
        self.sent = 0

    async def run(self) -> None:
        """Enqueue every job, each tick what is due and what the ready set has room for."""
        gate = asyncio.Semaphore(ENQUEUE_CONCURRENCY)

        async def enqueue(spec: JobSpec) -> None:
            async with gate:
                await self._queue.enqueue(spec.type, spec.payload, job_id=spec.id)

        total, started = len(self._specs), time.monotonic()
        reported = started
        while self.sent < total:
            due = round(total * (time.monotonic() - started) / self._duration_s) + 1
            room = self._max_waiting - (await self._queue.counts()).ready
            upto = min(total, due, self.sent + max(0, room))
            await asyncio.gather(*(enqueue(spec) for spec in self._specs[self.sent : upto]))
            async with self._advanced:
                self.sent = upto
                self._advanced.notify_all()
            if time.monotonic() - reported > PROGRESS_EVERY_S:
                reported = time.monotonic()
                rate = self.sent / (reported - started)
                self._progress(f"{self.sent:,} of {total:,} jobs enqueued ({rate:,.0f}/s)")
            await asyncio.sleep(TICK_S)

    async def reached(self, fraction: float) -> None:
        """Wait until `fraction` of the jobs have been enqueued."""
        async with self._advanced:
            await self._advanced.wait_for(lambda: self.sent >= fraction * len(self._specs))


async def settle(
    queue: RedisQueue, workers: WorkerProcesses, timeout_s: float, progress: Callable[[str], None]
) -> bool:
    """Wait until no job is scheduled, ready or leased, and the journal is drained.

    The journal is empty only once every transition is in PostgreSQL, entries a
    SIGKILLed worker's drain had read included (a live drain takes them over after
    `scheduler.store.STALE_MS`). Return False at the timeout.
    """
    deadline = time.monotonic() + timeout_s
    reported = time.monotonic()
    while time.monotonic() < deadline:
        workers.check()
        counts = await queue.counts()
        live = counts.scheduled + counts.ready + counts.leased
        if live == 0 and counts.journal == 0:
            return True
        if time.monotonic() - reported > PROGRESS_EVERY_S:
            progress(f"waiting for {live:,} jobs to finish, {counts.journal:,} journal entries")
            reported = time.monotonic()
        await asyncio.sleep(SETTLE_POLL_S)
    return False


async def keep_draining(redis: Redis, key: str, timeline: Timeline, stop: asyncio.Event) -> None:
    """Move the ledger's entries out of Redis into `timeline` until `stop`, then once more.

    Stopped by an event, not cancelled: a cancelled `LPOP` could lose what it popped.
    """
    while not stop.is_set():
        record(timeline, await ledger.drain(redis, key))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), DRAIN_EVERY_S)
    record(timeline, await ledger.drain(redis, key))


async def keep_sampling(redis: Redis, engine: AsyncEngine, into: list[MemorySample]) -> None:
    """Append Redis `used_memory` and the DLQ row count to `into`, until cancelled."""
    while True:
        memory = await redis.info("memory")
        async with engine.connect() as conn:
            dead = await conn.scalar(select(func.count()).select_from(dead_table))
        into.append(MemorySample(time.time(), int(memory["used_memory"]), int(dead or 0)))
        await asyncio.sleep(SAMPLE_EVERY_S)


@dataclass
class Run:
    """One run's servers, workers and records."""

    plan: Plan
    rng: random.Random
    redis: Redis
    engine: AsyncEngine
    queue: RedisQueue
    workers: WorkerProcesses
    progress: Callable[[str], None]
    timeline: Timeline = field(default_factory=Timeline)

    def producer(self, specs: Sequence[JobSpec], duration_s: float) -> Producer:
        """Return a producer of `specs` with this run's back-pressure."""
        waiting = self.plan.workers * self.plan.concurrency
        return Producer(self.queue, specs, duration_s, waiting, self.progress)

    async def chaos_phase(self, specs: Sequence[JobSpec]) -> None:
        """Produce `specs` while killing and restarting workers; wait for the queue to empty."""
        plan = self.plan
        self.progress(f"chaos phase: {plan.describe()}")
        producer = self.producer(specs, plan.produce_s)
        async with background(keep_sampling(self.redis, self.engine, self.timeline.chaos_memory)):
            await asyncio.gather(producer.run(), self.kill_and_restart(producer))
            await self.settle()

    async def kill_and_restart(self, producer: Producer) -> None:
        """SIGKILL `plan.kills` random serving workers at random moments, then restart each."""
        plan = self.plan
        low, high = KILLS_BETWEEN
        moments = sorted(self.rng.uniform(low, high) for _ in range(plan.kills))
        for number, fraction in enumerate(moments, 1):
            await producer.reached(fraction)
            victim = self.rng.choice(await self.serving())
            kill = await self.workers.kill(victim)
            self.timeline.kills.append(kill)
            replacement = self.workers.start()
            self.progress(
                f"kill {number}/{plan.kills}: SIGKILL {kill.worker} holding "
                f"{len(kill.in_flight)} leases ({kill.backlog} jobs queued); "
                f"started {replacement.id}"
            )
        await producer.reached(RESTART_AT)
        for old in list(self.workers.live):
            new = self.workers.start()
            await self.until_connected(new)
            at = time.time()
            drain_s = await self.workers.terminate(old)
            self.timeline.restarts.append(Restart(at, old.id, new.id, drain_s))
            self.progress(
                f"rolling restart: {new.id} up; SIGTERM {old.id}, drained in {drain_s:.1f} s"
            )

    async def until_connected(self, worker: WorkerProcess) -> None:
        """Wait until `worker` has started up and connected to Redis."""

        async def connected() -> bool:
            return await self.workers.connected(worker)

        await self._wait_for(connected, f"{worker.id} to connect")

    async def serving(self) -> list[WorkerProcess]:
        """Wait until some live workers have run a job; return them."""

        async def any_serving() -> bool:
            return bool(self.workers.serving(self.timeline.working))

        await self._wait_for(any_serving, "a worker to run a job")
        return self.workers.serving(self.timeline.working)

    async def _wait_for(self, condition: Callable[[], Awaitable[bool]], what: str) -> None:
        """Poll `condition`; fail if a worker died, or after `START_TIMEOUT_S`."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not await condition():
            self.workers.check()
            if time.monotonic() > deadline:
                raise WorkerExitedError(f"waited {START_TIMEOUT_S:g} s for {what}")
            await asyncio.sleep(DRAIN_EVERY_S)

    async def dlq_phase(self, specs: Sequence[JobSpec]) -> None:
        """Produce jobs that always fail while sampling Redis memory and the DLQ."""
        self.progress(f"DLQ phase: {len(specs):,} always-failing jobs of {DLQ_PAYLOAD_BYTES:,} B")
        async with background(keep_sampling(self.redis, self.engine, self.timeline.dlq_memory)):
            await self.producer(specs, self.plan.dlq_produce_s).run()
            await self.settle()

    async def settle(self) -> None:
        """Wait for the queue to empty (the checker reports what did not finish)."""
        if not await settle(self.queue, self.workers, self.plan.settle_timeout_s, self.progress):
            self.progress(f"the queue did not empty within {self.plan.settle_timeout_s:g} s")


async def gather_evidence(run: Run, enqueued: Sequence[JobSpec]) -> Evidence:
    """Read what Redis and PostgreSQL hold after the run, with the run's own records."""
    in_redis: set[str] = set()
    for start in range(0, len(enqueued), EXISTS_BATCH):
        batch = [spec.id for spec in enqueued[start : start + EXISTS_BATCH]]
        async with run.redis.pipeline(transaction=False) as pipe:
            for job_id in batch:
                _ = pipe.exists(run.queue.job_key(job_id))
            found = await pipe.execute()
        in_redis |= {job_id for job_id, exists in zip(batch, found, strict=True) if exists}
    async with run.engine.connect() as conn:
        jobs = await conn.execute(
            select(jobs_table.c.id, jobs_table.c.state, jobs_table.c.attempts)
        )
        states = {row.id: FinalState(row.state, row.attempts) for row in jobs}
        dead = await conn.execute(select(dead_table.c.job_id, dead_table.c.attempts))
        dead_rows = {row.job_id: row.attempts for row in dead}
        last = await conn.execute(LAST_AUDIT_EVENTS)
        last_audit = {row.job_id: row.event for row in last}
    return Evidence(
        enqueued=[spec.id for spec in enqueued],
        always_failing=frozenset(spec.id for spec in enqueued if spec.type == "fail"),
        executions=run.timeline.executions,
        kills=run.timeline.kills,
        states=states,
        dead_rows=dead_rows,
        last_audit=last_audit,
        in_redis=frozenset(in_redis),
        max_attempts=DEFAULT_MAX_ATTEMPTS,
    )


@contextlib.asynccontextmanager
async def run_database(database_url: str, name: str) -> AsyncIterator[str]:
    """Create a PostgreSQL database of the run's own; yield its URL; drop it afterwards."""
    admin = sql_engine(database_url, pool_size=1, max_overflow=0, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def _delete_keys(redis: Redis, keys: KeyBuilder) -> None:
    async for key in redis.scan_iter(match=f"{keys.prefix}:*", count=1_000):
        await redis.unlink(key)


async def execute(
    redis_url: str, database_url: str, plan: Plan, seed: int, progress: Callable[[str], None]
) -> Report:
    """Run `plan` on the servers (a database and key prefix of its own) and judge it."""
    run_id = f"chaos_{uuid.uuid4().hex[:10]}"
    keys = KeyBuilder(run_id)
    rng = random.Random(seed)
    specs = job_specs(plan, run_id, keys.key("ledger"), rng)
    failing = dlq_specs(plan, run_id, keys.key("ledger"))
    started, started_at = time.monotonic(), time.time()
    redis = redis_client(redis_url)
    try:
        async with run_database(database_url, run_id) as run_url:
            engine = sql_engine(run_url, pool_size=2, max_overflow=2)
            try:
                await ensure_schema(engine)
                run = _new_run(
                    plan,
                    rng,
                    redis,
                    engine,
                    keys,
                    database_url=run_url,
                    redis_url=redis_url,
                    progress=progress,
                )
                await _run_phases(run, keys.key("ledger"), specs, failing)
                evidence = await gather_evidence(run, [*specs, *failing])
            finally:
                await engine.dispose()
    finally:
        await _delete_keys(redis, keys)
        await redis.aclose()
    times = redelivery_times(evidence)
    checks = check_run(evidence)
    if failing:
        checks.append(check_memory_bounded(run.timeline.dlq_memory, DLQ_PAYLOAD_BYTES))
    return Report(
        plan=plan,
        started_at=started_at,
        checks=checks,
        redelivery=spread(times),
        redelivery_times=times,
        timeline=run.timeline,
        seconds=time.monotonic() - started,
    )


def _new_run(
    plan: Plan,
    rng: random.Random,
    redis: Redis,
    engine: AsyncEngine,
    keys: KeyBuilder,
    *,
    database_url: str,
    redis_url: str,
    progress: Callable[[str], None],
) -> Run:
    queue = RedisQueue(redis, keys, QUEUE)
    options = WorkerOptions(
        redis_url=redis_url,
        database_url=database_url,
        prefix=keys.prefix,
        queue=QUEUE,
        concurrency=plan.concurrency,
        lease_ms=plan.lease_ms,
        grace_s=plan.grace_s,
        retry_base_ms=RETRY_BASE_MS,
        retry_cap_ms=RETRY_CAP_MS,
    )
    log_dir = state_dir() / "chaos-workers"
    shutil.rmtree(log_dir, ignore_errors=True)
    workers = WorkerProcesses(options, queue, log_dir)
    return Run(plan, rng, redis, engine, queue, workers, progress)


async def _run_phases(
    run: Run, ledger_key: str, specs: Sequence[JobSpec], failing: Sequence[JobSpec]
) -> None:
    """Start the workers and the ledger drain; run both phases; drain every worker."""
    stop = asyncio.Event()
    draining = asyncio.create_task(keep_draining(run.redis, ledger_key, run.timeline, stop))
    try:
        for _ in range(run.plan.workers):
            run.workers.start()
        await run.chaos_phase(specs)
        if failing:
            await run.dlq_phase(failing)
        run.progress("draining the workers")
        await run.workers.stop_all()
        stop.set()
        await draining
    finally:
        draining.cancel()
        await run.workers.stop_all()


async def run_plan(context: ExperimentContext, plan: Plan) -> str:
    """Run `plan`, write `chaos.json` and `chaos.png`, return the summary line."""
    report = await execute(
        context.urls.require("redis_url"),
        context.urls.require("database_url"),
        plan,
        context.seed,
        context.progress,
    )
    save_results(
        context.results_dir,
        NAME,
        payload(report),
        servers=context.urls,
        size=plan.name,
        seed=context.seed,
    )
    plot(report, context.results_dir / f"{NAME}.png")
    return summarize(report)


async def run(context: ExperimentContext) -> str:
    """`lab experiment chaos [--full]`: the run of the context's size."""
    return await run_plan(context, PLANS[context.size])
