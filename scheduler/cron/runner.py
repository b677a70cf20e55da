"""The cron runner: sleep until each schedule's next tick, then enqueue it, once.

Pattern: one asyncio task per schedule on an injected clock. Each wake-up looks for the
latest tick at or before now that this runner has not handled yet and fires it: one
`RedisQueue.enqueue` with the schedule's fence, so the check "was this tick fired?",
the job and "this tick is fired" are one Lua script. The job's id is
`cron:<name>:<tick>` and it is due at the tick on Redis time. Any number of runners
may run the same schedules: the first to reach a tick enqueues it, the others get
`created=False`.

Guarantee: every tick is enqueued at most once, whatever the number of runners, their
clocks or their crashes; and at least once while one runner is alive, Redis answers,
and the tick is no older than `max_lateness_s`. Missed ticks (no runner alive, a stall,
Redis down): a runner fires only the latest one, if it is no later than
`max_lateness_s`, and skips (logs) the older ones, so an outage never ends in a burst
of stale jobs (docs/decisions/0008). A runner whose clock is ahead enqueues a tick
early, but the job is due at the tick on Redis time; a runner whose clock is behind
fires late unless another runner fired first. Failure it handles: a Redis error while
firing (logged; retried every `retry_s` while the tick is not too late) and a runner
SIGKILLed mid-call (the script ran whole or not at all: another runner fires the tick).
"""

import argparse
import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence

from redis.exceptions import RedisError

from labs.clients import redis_client, sql_engine
from labs.clock import Clock, SystemClock
from labs.keys import KeyBuilder
from labs.tasks import on_stop_signals
from scheduler.cron.schedule import Schedule, parse_spec
from scheduler.queue import Fence, RedisQueue
from scheduler.store import JournalDrain, ensure_schema

log = logging.getLogger(__name__)

DEFAULT_MAX_LATENESS_S = 300.0


class CronRunner:
    """Fires the ticks of `schedules` into one queue."""

    def __init__(
        self,
        queue: RedisQueue,
        schedules: Sequence[Schedule],
        *,
        clock: Clock,
        max_lateness_s: float = DEFAULT_MAX_LATENESS_S,
        retry_s: float = 1.0,
    ) -> None:
        """Enqueue into `queue`, reading time from `clock` (the queue journals each job)."""
        names = [schedule.name for schedule in schedules]
        if len(set(names)) != len(names):
            raise ValueError(f"schedule names must be unique: {names}")
        if max_lateness_s < 0 or retry_s <= 0:
            raise ValueError("need max_lateness_s >= 0 and retry_s > 0")
        self._queue = queue
        self._schedules = list(schedules)
        self._clock = clock
        self._max_lateness_ms = round(max_lateness_s * 1000)
        self._retry_s = retry_s
        self._stop = asyncio.Event()
        self.fired = 0
        """Ticks this runner enqueued, for tests and logs."""
        self.already_fired = 0
        """Ticks this runner found fired by another runner (or by itself, earlier)."""
        self.skipped = 0
        """Due ticks this runner dropped as later than `max_lateness_s`."""
        self.errors = 0
        """Fires that failed on a Redis error (and were retried)."""

    @property
    def schedules(self) -> list[Schedule]:
        """Return the schedules this runner follows."""
        return list(self._schedules)

    async def run(self) -> None:
        """Fire ticks until `stop()`; a bug in one schedule's loop stops them all and raises."""
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._follow(each)) for each in self._schedules]
            await self._stop.wait()
            for task in tasks:
                task.cancel()

    def stop(self) -> None:
        """Make `run()` return; a tick being enqueued is enqueued whole or not at all."""
        self._stop.set()

    async def fire(self, schedule: Schedule, tick_ms: int) -> bool:
        """Enqueue the job of `tick_ms` unless it (or a later tick) was fired; True if now."""
        job = schedule.job(tick_ms)
        enqueued = await self._queue.enqueue(
            job.type,
            job.payload,
            priority=job.priority,
            max_attempts=job.max_attempts,
            run_at_ms=job.run_at_ms,
            job_id=job.id,
            fence=Fence(schedule.fence, tick_ms),
        )
        if not enqueued.created:
            self.already_fired += 1
            log.debug("cron %s: tick %d already fired", schedule.name, tick_ms)
            return False
        self.fired += 1
        log.info("cron %s: fired tick %d as job %s", schedule.name, tick_ms, job.id)
        return True

    async def _follow(self, schedule: Schedule) -> None:
        """Handle the latest due tick, sleep until the next one; forever."""
        handled: int | None = None
        while True:
            now_ms = self._now_ms()
            due = schedule.latest_tick_ms(now_ms)
            if due is not None and (handled is None or due > handled):
                if not await self._handle(schedule, due, now_ms, handled):
                    await self._clock.sleep(self._retry_s)
                    continue
                handled = due
            upcoming = schedule.next_tick_ms(now_ms)
            if upcoming is None:
                log.warning("cron %s: no tick in the next 50 years; stopping", schedule.name)
                return
            await self._clock.sleep((upcoming - now_ms) / 1000)

    async def _handle(self, schedule: Schedule, due: int, now_ms: int, handled: int | None) -> bool:
        """Fire `due`, or skip it if too late; False if Redis failed and it should be retried.

        At start (`handled` is None) a tick beyond the lateness is the normal case (the
        runner starts between ticks), logged at INFO; later it means a stall, a WARNING.
        """
        if handled is not None and schedule.next_tick_ms(handled) != due:
            log.warning(
                "cron %s: ticks after %d and before %d were missed; only the latest counts",
                schedule.name,
                handled,
                due,
            )
        lateness_ms = now_ms - due
        if lateness_ms > self._max_lateness_ms:
            self.skipped += 1
            log.log(
                logging.INFO if handled is None else logging.WARNING,
                "cron %s: not firing tick %d, %d ms late (max %d)",
                schedule.name,
                due,
                lateness_ms,
                self._max_lateness_ms,
            )
            return True
        try:
            await self.fire(schedule, due)
        except RedisError:
            self.errors += 1
            log.exception("cron %s: could not fire tick %d; retrying", schedule.name, due)
            return False
        return True

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)


async def serve(
    redis_url: str,
    prefix: str,
    queue: str,
    schedules: Sequence[Schedule],
    *,
    database_url: str | None = None,
    max_lateness_s: float = DEFAULT_MAX_LATENESS_S,
    audit_interval_s: float = 0.2,
) -> None:
    """Run a cron runner until SIGTERM or SIGINT; with `database_url`, audit its jobs.

    The queue journals each enqueued job; with a database, this process also drains
    the journal into PostgreSQL (as workers do), so a tick's `enqueued` row does not
    wait for a worker. Unreachable servers raise at start-up (Redis `PING`, the tables).
    """
    client = redis_client(redis_url)
    engine = sql_engine(database_url, pool_size=1, max_overflow=1) if database_url else None
    clock = SystemClock()
    try:
        await client.ping()
        redis_queue = RedisQueue(client, KeyBuilder(prefix), queue, journal=engine is not None)
        drain = None
        if engine is not None:
            await ensure_schema(engine)
            consumer = f"cron-{uuid.uuid4().hex[:12]}"
            drain = JournalDrain(
                client, redis_queue.journal_key, engine, consumer=consumer, clock=clock
            )
        runner = CronRunner(redis_queue, schedules, clock=clock, max_lateness_s=max_lateness_s)
        await _run_until_signalled(runner, drain, audit_interval_s)
    finally:
        await client.aclose()
        if engine is not None:
            await engine.dispose()


async def _run_until_signalled(
    runner: CronRunner, drain: JournalDrain | None, interval_s: float
) -> None:
    """Run `runner` (and the journal `drain`); SIGTERM/SIGINT stop both; drain at the end."""
    log.info("cron runner started: %s", ", ".join(each.name for each in runner.schedules))
    async with contextlib.AsyncExitStack() as stack:
        if drain is not None:
            await stack.enter_async_context(drain.running(interval_s))
        with on_stop_signals(runner.stop):
            await runner.run()
    log.info("cron runner stopped")


def main(argv: list[str] | None = None) -> None:
    """`python -m scheduler.cron --redis-url URL --schedule SPEC...`: one cron runner process.

    SPEC is `name|cron expression|job type[|payload JSON[|priority[|max attempts]]]`,
    for example `'digest|*/5 * * * *|noop|{"to": "ops"}'`; repeat --schedule for more.
    """
    parser = argparse.ArgumentParser(
        prog="scheduler.cron",
        description=main.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--redis-url", required=True)
    parser.add_argument(
        "--schedule", action="append", required=True, type=_schedule, metavar="SPEC"
    )
    parser.add_argument("--prefix", default="sched")
    parser.add_argument("--queue", default="default")
    parser.add_argument("--database-url", default=None, help="audit enqueued jobs in PostgreSQL")
    parser.add_argument(
        "--max-lateness-s",
        type=float,
        default=DEFAULT_MAX_LATENESS_S,
        help="fire a missed tick only if it is at most this late",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="DEBUG also logs the ticks another runner fired first",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(
        serve(
            args.redis_url,
            args.prefix,
            args.queue,
            args.schedule,
            database_url=args.database_url,
            max_lateness_s=args.max_lateness_s,
        )
    )


def _schedule(spec: str) -> Schedule:
    try:
        return parse_spec(spec)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
