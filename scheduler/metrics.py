"""The scheduler API's Prometheus metrics: enqueues by type, queue depths, lanes, DLQ size.

Pattern: counters are incremented on the request path; gauges that describe the
servers (how many jobs are scheduled, ready, leased and parked in Redis, the journal's
backlog, each lane's breaker state and running jobs; how many rows the DLQ holds in
PostgreSQL) are read when Prometheus scrapes, by a scrape hook, so no polling
loop runs between scrapes and a scrape never shows a value older than itself. Failure
it handles: a server that does not answer sets its gauges to NaN ("unknown"), never a
stale number; and job types, which clients choose, cannot blow up label cardinality
(past `max_types` distinct ones, the rest are counted as `other`).
"""

import math

from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from scheduler import dlq
from scheduler.domain import BreakerState
from scheduler.queue import RedisQueue

OTHER_TYPE = "other"
_SETS = ("scheduled", "ready", "leased", "parked", "journal")
BREAKER_LEVELS = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class SchedulerMetrics:
    """The scheduler's metrics in one app's registry."""

    def __init__(self, registry: CollectorRegistry, *, max_types: int = 100) -> None:
        """Register the metrics in `registry`; label at most `max_types` job types."""
        self._max_types = max_types
        self._types: set[str] = set()
        self._enqueued = Counter(
            "scheduler_jobs_enqueued",
            "Jobs enqueued (deduplicated ones excluded)",
            ["type"],
            registry=registry,
        )
        self._depth = Gauge(
            "scheduler_queue_jobs",
            "Jobs in the queue's Redis sets, read at scrape time",
            ["queue", "set"],
            registry=registry,
        )
        self._breaker = Gauge(
            "scheduler_lane_breaker_state",
            "Each lane's circuit breaker: 0 closed, 1 half-open, 2 open",
            ["lane"],
            registry=registry,
        )
        self._running = Gauge(
            "scheduler_lane_running_jobs",
            "Jobs of each lane running now, across every worker",
            ["lane"],
            registry=registry,
        )
        self._dead = Gauge(
            "scheduler_dlq_jobs",
            "Dead jobs in the PostgreSQL DLQ, read at scrape time",
            registry=registry,
        )

    def count_enqueued(self, job_type: str) -> None:
        """Count one enqueued job of `job_type`."""
        if job_type not in self._types and len(self._types) < self._max_types:
            self._types.add(job_type)
        self._enqueued.labels(job_type if job_type in self._types else OTHER_TYPE).inc()

    async def refresh(self, queue: RedisQueue, queue_name: str, engine: AsyncEngine) -> None:
        """Read the queue depths and the DLQ size into the gauges (NaN when unreadable)."""
        depths: dict[str, float]
        try:
            counts = await queue.counts()
            depths = {name: getattr(counts, name) for name in _SETS}
            await self._refresh_lanes(queue)
        except RedisError:
            depths = dict.fromkeys(_SETS, math.nan)
        for name, value in depths.items():
            self._depth.labels(queue_name, name).set(value)
        try:
            self._dead.set(await dlq.size(engine))
        except (SQLAlchemyError, OSError):
            self._dead.set(math.nan)

    async def _refresh_lanes(self, queue: RedisQueue) -> None:
        """Read every lane's breaker and running jobs (lanes gone since are dropped)."""
        self._breaker.clear()
        for breaker in await queue.breakers():
            self._breaker.labels(breaker.lane).set(BREAKER_LEVELS[breaker.state])
        self._running.clear()
        for lane, running in (await queue.in_flight()).items():
            self._running.labels(lane).set(running)
