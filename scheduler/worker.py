"""The worker: an asyncio loop that reclaims, claims, runs, heartbeats and acks.

Pattern: each pass of the loop first reclaims expired leases (so every live worker is
also the dead workers' janitor), then claims as many jobs as it has free slots, runs
each handler under a timeout, acks on success and nacks with full-jitter backoff on
failure. A heartbeat task extends the leases of running jobs every `lease_ms / 3`; a
lease found lost (reclaimed after a stall) cancels its handler, whose ack would be
refused anyway. Guarantee: at least once — a job is acked only after its handler
returned, so a kill at any moment leaves it leased, and the next reclaim after
`lease_ms` re-delivers it. The failures it handles: a handler that raises or hangs
(nack with backoff; dead after `max_attempts`, or at once for a `PermanentJobError`;
both count against the lane's circuit breaker except permanent and unknown-type
errors, which are the job's fault, not the downstream's), a Redis error in the loop or
the heartbeat (logged; the loop carries on), and a graceful stop (`drain`: stop
claiming, let running jobs finish within a grace, hand the rest back without using an
attempt). The audit trail and the DLQ do not depend on this process surviving: the
queue scripts journal every transition, and `serve()` runs a `JournalDrain` that
writes the journal to PostgreSQL. `on_dead` only tells the caller of a dead job.
"""

import argparse
import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from redis.exceptions import RedisError

from labs.clients import http_client, redis_client, sql_engine
from labs.clock import Clock, SystemClock
from labs.imports import load_target
from labs.keys import KeyBuilder
from labs.tasks import on_stop_signals
from scheduler.domain import (
    DEFAULT_POLICIES,
    DeadJob,
    Job,
    PermanentJobError,
    RetryPolicy,
    retry_delay_ms,
)
from scheduler.handlers import Handler, HandlerContext, HandlerFactory, builtin_handlers
from scheduler.queue import Lease, RedisQueue
from scheduler.store import JournalDrain, ensure_schema

log = logging.getLogger(__name__)

DeadSink = Callable[[DeadJob], Awaitable[None]]


WAKE_WAIT_S = 1.0
"""How long one wait for a wake-up blocks (below the client's 2 s socket timeout)."""


class HandlerTimeoutError(Exception):
    """The handler ran longer than the worker's timeout."""


class UnknownJobTypeError(Exception):
    """No handler is registered for the job's type."""


async def _log_dead(dead: DeadJob) -> None:
    log.warning("job %s (%s) is dead: %s", dead.job.id, dead.job.type, dead.error)


async def _unknown_type(job: Job) -> None:
    raise UnknownJobTypeError(job.type)


class Worker:
    """Runs jobs from one queue, up to `concurrency` at a time."""

    def __init__(
        self,
        queue: RedisQueue,
        handlers: Mapping[str, Handler],
        *,
        clock: Clock,
        rng: random.Random,
        concurrency: int = 10,
        lease_ms: int = 5_000,
        retry: RetryPolicy | None = None,
        timeout_s: float = 300.0,
        poll_s: float = 0.1,
        worker_id: str | None = None,
        on_dead: DeadSink | None = None,
    ) -> None:
        """Take jobs from `queue`; time and chance only from `clock` and `rng`.

        `on_dead` hears of each job this worker saw die (default: a log line).
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.id = worker_id or f"w-{uuid.uuid4().hex[:12]}"
        self._queue = queue
        self._handlers = dict(handlers)
        self._clock = clock
        self._rng = rng
        self._concurrency = concurrency
        self._lease_ms = lease_ms
        self._retry = retry or RetryPolicy()
        self._timeout_s = timeout_s
        self._poll_s = poll_s
        self._on_dead = on_dead or _log_dead
        self._running: dict[str, tuple[Lease, asyncio.Task[None]]] = {}
        self._handler_tasks: dict[str, asyncio.Future[None]] = {}
        """The handler of each delivery still running it (not yet settling its outcome)."""
        self._stop = asyncio.Event()
        self._room = asyncio.Event()
        """Set while a slot is free: only then does the worker listen for wake-ups."""
        self._room.set()
        self._woken = asyncio.Event()
        self.processed = 0
        """Deliveries finished (acked, nacked, or found lost), for tests and metrics."""

    @property
    def in_flight(self) -> int:
        """Return how many jobs are running now."""
        return len(self._running)

    async def run(self, *, burst: bool = False) -> None:
        """Work until `drain()`; with `burst`, also return once nothing is due or running."""
        heartbeat = asyncio.create_task(self._heartbeat_loop())
        waker = asyncio.create_task(self._wake_loop())
        try:
            while not self._stop.is_set():
                claimed = await self._pass()
                if burst and not claimed and not self._running:
                    break
                await self._wait_for_work()
            if self._running:
                await asyncio.wait([task for _, task in self._running.values()])
        finally:
            for task in (heartbeat, waker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def drain(self, grace_s: float) -> None:
        """Stop claiming; let running jobs finish for `grace_s`; hand the rest back."""
        self._stop.set()
        tasks = [task for _, task in self._running.values()]
        if tasks:
            await _first_of(asyncio.wait(tasks), self._clock.sleep(grace_s))
        left = list(self._running.values())
        for lease, _ in left:
            self._cancel_handler(lease.job.id)
        for lease, task in left:
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(RedisError):
                await self._queue.release(lease)

    async def _pass(self) -> int:
        """Reclaim, then claim for the free slots; return how many jobs were claimed."""
        try:
            _, dead = await self._queue.reclaim()
            for job in dead:
                await self._on_dead(job)
            free = self._concurrency - len(self._running)
            leases = await self._queue.claim(self.id, free, self._lease_ms) if free > 0 else []
        except RedisError:
            log.exception("worker %s: Redis failed; retrying after %s s", self.id, self._poll_s)
            return 0
        for lease in leases:
            task = asyncio.create_task(self._deliver(lease))
            self._running[lease.job.id] = (lease, task)
        self._track_room()
        return len(leases)

    def _track_room(self) -> None:
        if len(self._running) < self._concurrency:
            self._room.set()
        else:
            self._room.clear()

    async def _wait_for_work(self) -> None:
        """Wait until a job finishes, an enqueue wakes us, the poll passes, or a drain starts."""
        waiters: list[Awaitable[Any]] = [task for _, task in self._running.values()]
        await _first_of(
            asyncio.wait(waiters) if waiters else asyncio.Event().wait(),
            self._woken.wait(),
            self._clock.sleep(self._poll_s),
            self._stop.wait(),
        )
        self._woken.clear()

    async def _wake_loop(self) -> None:
        """While a slot is free, block on the queue's wake-ups.

        An idle worker thus starts a new job within a round trip of its enqueue instead
        of at its next poll; the poll remains for jobs that become due by time.
        """
        while True:
            await self._room.wait()
            try:
                if await self._queue.wait_for_work(WAKE_WAIT_S):
                    self._woken.set()
            except RedisError:
                log.exception("worker %s: waiting for wake-ups failed", self.id)
                await self._clock.sleep(self._poll_s)

    async def _deliver(self, lease: Lease) -> None:
        job = lease.job
        try:
            await self._run_handler(job)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - any handler failure fails the attempt
            await self._settle(lease, self._fail(lease, error))
        else:
            await self._settle(lease, self._ack(lease))
        finally:
            self._running.pop(job.id, None)
            self._track_room()
            self.processed += 1

    async def _run_handler(self, job: Job) -> None:
        """Run the job's handler under the timeout, cancellable until it returns."""
        handler = asyncio.ensure_future(self._handlers.get(job.type, _unknown_type)(job))
        self._handler_tasks[job.id] = handler
        try:
            await self._within_timeout(handler)
        finally:
            del self._handler_tasks[job.id]

    def _cancel_handler(self, job_id: str) -> bool:
        """Cancel the job's handler if it is still running; never an ack or nack under way.

        Cancelling a delivery that is settling could interrupt an ack after Redis ran it
        (the worker would not know) or before (the job would run again for nothing).
        """
        handler = self._handler_tasks.get(job_id)
        if handler is None or handler.done():
            return False
        handler.cancel()
        return True

    async def _settle(self, lease: Lease, outcome: Awaitable[None]) -> None:
        """Record an outcome; if Redis fails, the lease expires and the job runs again."""
        try:
            await outcome
        except RedisError:
            log.exception("job %s: could not record its outcome; it will run again", lease.job.id)

    async def _ack(self, lease: Lease) -> None:
        if not await self._queue.ack(lease):
            log.warning("job %s: ack refused, the lease was lost", lease.job.id)

    async def _fail(self, lease: Lease, error: BaseException) -> None:
        permanent = isinstance(error, PermanentJobError)
        result = await self._queue.nack(
            lease,
            retry_delay_ms(self._retry.delay_ms(lease.job.attempts, self._rng), error),
            repr(error),
            permanent=permanent,
            trips_breaker=not permanent and not isinstance(error, UnknownJobTypeError),
        )
        if result.refused:
            log.warning("job %s: nack refused, the lease was lost", lease.job.id)
        elif result.dead is not None:
            await self._on_dead(result.dead)

    async def _within_timeout(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        finished = await _first_of(task, self._clock.sleep(self._timeout_s))
        if not finished:
            raise HandlerTimeoutError(f"ran longer than {self._timeout_s} s")
        task.result()

    async def _heartbeat_loop(self) -> None:
        while True:
            await self._clock.sleep(self._lease_ms / 3 / 1000)
            running = list(self._running.values())
            if not running:
                continue
            try:
                held = await self._queue.heartbeat(
                    self.id, [lease for lease, _ in running], self._lease_ms
                )
            except RedisError:
                log.exception("worker %s: heartbeat failed", self.id)
                continue
            for (lease, _), still_held in zip(running, held, strict=True):
                # A lease found gone while its handler already returned is this worker's
                # own ack or nack racing the heartbeat: nothing to cancel, nothing lost.
                if not still_held and self._cancel_handler(lease.job.id):
                    log.warning("job %s: lease lost; its handler was cancelled", lease.job.id)


async def _first_of(first: Awaitable[Any], *others: Awaitable[Any]) -> bool:
    """Run the awaitables until one finishes, cancel the rest; return whether `first` won."""
    tasks = [asyncio.ensure_future(each) for each in (first, *others)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        losers = [task for task in tasks if not task.done()]
        for task in losers:
            task.cancel()
        await asyncio.gather(*losers, return_exceptions=True)
    return tasks[0] in done


async def serve(
    redis_url: str,
    prefix: str,
    queue: str,
    *,
    concurrency: int,
    lease_ms: int,
    grace_s: float,
    database_url: str | None = None,
    burst: bool = False,
    audit_interval_s: float = 0.2,
    handlers: HandlerFactory = builtin_handlers,
    retry: RetryPolicy | None = None,
    worker_id: str | None = None,
) -> None:
    """Run a worker with `handlers` (default: the built-ins) until SIGTERM or SIGINT, then drain.

    With `database_url`, deliveries are audited and dead jobs buried in PostgreSQL; with
    `burst`, it also returns once nothing is due or running. `retry` defaults to
    `RetryPolicy()`. `worker_id` is the owner its leases name and its Redis connections'
    client name (default: a random id, unnamed connections). Unreachable servers raise
    at start-up (Redis `PING`, creating the tables), not later in the loop. Handlers
    share one pooled HTTP client with a connection per slot, so none waits for the pool.
    """
    client = redis_client(redis_url, client_name=worker_id)
    http = http_client(max_connections=concurrency)
    engine = sql_engine(database_url, pool_size=2, max_overflow=2) if database_url else None
    clock = SystemClock()
    rng = random.Random()
    try:
        await client.ping()
        redis_queue = RedisQueue(client, KeyBuilder(prefix), queue, journal=engine is not None)
        await redis_queue.set_default_policies(DEFAULT_POLICIES)
        worker = Worker(
            redis_queue,
            handlers(HandlerContext(clock=clock, rng=rng, redis=client, http=http)),
            clock=clock,
            rng=rng,
            concurrency=concurrency,
            lease_ms=lease_ms,
            retry=retry,
            worker_id=worker_id,
        )
        drain = None
        if engine is not None:
            await ensure_schema(engine)
            journal = redis_queue.journal_key
            drain = JournalDrain(client, journal, engine, consumer=worker.id, clock=clock)
        await _run_until_signalled(worker, drain, grace_s, burst=burst, interval_s=audit_interval_s)
    finally:
        await client.aclose()
        await http.aclose()
        if engine is not None:
            await engine.dispose()


async def _run_until_signalled(
    worker: Worker, drain: JournalDrain | None, grace_s: float, *, burst: bool, interval_s: float
) -> None:
    """Run `worker` (and the journal `drain`); SIGTERM/SIGINT drain both; flush at the end."""
    draining: set[asyncio.Task[None]] = set()

    def drain_worker() -> None:
        draining.add(asyncio.create_task(worker.drain(grace_s)))

    async with contextlib.AsyncExitStack() as stack:
        if drain is not None:
            await stack.enter_async_context(drain.running(interval_s))
        with on_stop_signals(drain_worker):
            await worker.run(burst=burst)
            await asyncio.gather(*draining)


def main(argv: list[str] | None = None) -> None:
    """`python -m scheduler.worker --redis-url URL [--database-url URL]`: one worker process."""
    parser = argparse.ArgumentParser(prog="scheduler.worker", description=main.__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--prefix", default="sched")
    parser.add_argument("--queue", default="default")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--lease-ms", type=int, default=5_000)
    parser.add_argument("--grace-s", type=float, default=10.0)
    parser.add_argument("--database-url", default=None, help="audit and DLQ in PostgreSQL")
    parser.add_argument("--burst", action="store_true", help="exit once nothing is due")
    parser.add_argument(
        "--handlers",
        default="scheduler.handlers:builtin_handlers",
        help="module:function returning the handlers by job type",
    )
    parser.add_argument("--retry-base-ms", type=int, default=RetryPolicy.base_ms)
    parser.add_argument("--retry-cap-ms", type=int, default=RetryPolicy.cap_ms)
    parser.add_argument(
        "--worker-id", default=None, help="names its leases and its Redis connections"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(
        serve(
            args.redis_url,
            args.prefix,
            args.queue,
            concurrency=args.concurrency,
            lease_ms=args.lease_ms,
            grace_s=args.grace_s,
            database_url=args.database_url,
            burst=args.burst,
            handlers=load_target(args.handlers),
            retry=RetryPolicy(base_ms=args.retry_base_ms, cap_ms=args.retry_cap_ms),
            worker_id=args.worker_id,
        )
    )


if __name__ == "__main__":
    main()
