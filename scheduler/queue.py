"""The Redis adapter: every queue mutation is one atomic Lua script on Redis server time.

Pattern: a job is a hash; where it is in its life is which sorted set holds its id —
`scheduled` (by run time), `ready` (by priority, then FIFO) or `leases` (by lease
deadline). `claim` moves due jobs into `leases` with an owner and a fencing token
(the attempt number); `heartbeat` extends a lease; `ack` deletes the job; `nack`
schedules a retry or declares it dead; `reclaim`, run by every worker, returns
expired leases to the ready set. Guarantee: at least once — a job leaves Redis only by
an ack or as a dead job handed back to the caller, and a delivery whose lease was
reclaimed can no longer heartbeat, ack or nack (fencing), so a stalled worker cannot
complete or fail a job that another worker now runs. The failures it handles: a worker
killed mid-job (its lease expires and `reclaim` re-delivers), two workers reclaiming at
once (scripts are atomic: one moves the job, the other sees nothing), a duplicate
enqueue (an optional dedupe key returns the first id), a repeated tick of a schedule
(an optional fence enqueues each tick once, in the same script), a script cache flushed by a
restart (labs.lua reloads on NOSCRIPT), and unbounded memory (acked and dead jobs are
deleted with their dedupe keys). All times come from Redis `TIME` unless a test passes
an explicit `now_ms`. All keys of a queue share one hash tag, so a cluster runs it on
one slot.

Every transition also appends an event to the queue's journal (a Redis stream) in the
same script, so the audit trail cannot miss a transition or disagree with the queue:
`scheduler.store.JournalDrain` moves it into PostgreSQL in batches. A dead job leaves
Redis only as its journal event, which the drain acknowledges after the DLQ row
commits. Lanes (`scheduler.domain.lane_of`) carry circuit breakers, concurrency caps
and rates set per job type (`set_policy`); `claim` parks the jobs their lane holds
back, without using an attempt, and returns them when the lane has room again.
"""

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis, RedisCluster

from labs.keys import KeyBuilder
from labs.lua import ScriptArg, load
from scheduler.domain import (
    DEFAULT_MAX_ATTEMPTS,
    MIN_PRIORITY,
    BreakerState,
    DeadJob,
    Job,
    LanePolicy,
    lane_of,
)

ENQUEUE = load("scheduler.lua", "enqueue")
CLAIM = load("scheduler.lua", "claim")
HEARTBEAT = load("scheduler.lua", "heartbeat")
ACK = load("scheduler.lua", "ack")
NACK = load("scheduler.lua", "nack")
RECLAIM = load("scheduler.lua", "reclaim")
RELEASE = load("scheduler.lua", "release")

PROMOTE_BATCH = 1_000
"""Scheduled jobs promoted per claim at most, so one script never runs long."""
RECLAIM_BATCH = 1_000
"""Expired leases reclaimed per call at most."""
JOURNAL_BACKLOG_CAP = 200_000
"""Undrained journal events at which claiming stops (PostgreSQL down: dispatch waits)."""


@dataclass(frozen=True)
class Lease:
    """A claimed job, held by `worker_id` until `deadline_ms` (Redis time) unless extended."""

    job: Job
    worker_id: str
    deadline_ms: int

    @property
    def token(self) -> int:
        """Return the fencing token: the attempt number this delivery is."""
        return self.job.attempts


@dataclass(frozen=True)
class Enqueued:
    """The id of the job, and whether this call created it (False: a dedupe hit)."""

    id: str
    created: bool


@dataclass(frozen=True)
class Fence:
    """Enqueue only if fence `name` holds a tick below `tick`, and then hold `tick`.

    The check, the job and the new tick are one script, so a tick is enqueued once
    however many processes try it, and a process killed mid-call leaves either both
    the job and the tick or neither.
    """

    name: str
    tick: int


@dataclass(frozen=True)
class Nacked:
    """What a nack did: refused (lease lost), a retry at `retry_at_ms`, or a dead job."""

    refused: bool = False
    retry_at_ms: int | None = None
    dead: DeadJob | None = None


@dataclass(frozen=True)
class Counts:
    """How many jobs are in each set, and how many journal events wait for the drain."""

    scheduled: int
    ready: int
    leased: int
    parked: int
    journal: int

    @property
    def live(self) -> int:
        """Return how many jobs Redis holds (every job not yet succeeded or dead)."""
        return self.scheduled + self.ready + self.leased + self.parked


@dataclass(frozen=True)
class Breaker:
    """A lane's circuit breaker as Redis holds it."""

    lane: str
    state: BreakerState
    calls: int
    failures: int
    open_until_ms: int | None


class RedisQueue:
    """One named queue on Redis (standalone or cluster)."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        keys: KeyBuilder,
        name: str = "default",
        *,
        journal: bool = True,
        journal_cap: int = JOURNAL_BACKLOG_CAP,
    ) -> None:
        """Keep the queue `name` in `redis`, under keys built by `keys`, all tagged `name`.

        With `journal=False` no transition is journaled (no audit trail: for a queue
        with no PostgreSQL drain, whose journal would otherwise only grow).
        """
        self._redis = redis
        self._journaling = "1" if journal else ""
        self._journal_cap = journal_cap
        self._scheduled = keys.tagged(name, "scheduled")
        self._ready = keys.tagged(name, "ready")
        self._leases = keys.tagged(name, "leases")
        self._seq = keys.tagged(name, "seq")
        self.journal_key = keys.tagged(name, "journal")
        self._wake = keys.tagged(name, "wake")
        self._policies = keys.tagged(name, "policies")
        self._inflight = keys.tagged(name, "inflight")
        self._parked_lanes = keys.tagged(name, "parked")
        self._breaker_lanes = keys.tagged(name, "breakers")
        self._job_prefix = keys.tagged(name, "job") + ":"
        self._dedupe_prefix = keys.tagged(name, "dedupe") + ":"
        self._lane_prefix = keys.tagged(name, "lane") + ":"
        self._fence_prefix = keys.tagged(name, "fence") + ":"

    @property
    def redis(self) -> Redis | RedisCluster:
        """Return the client this queue runs on."""
        return self._redis

    def job_key(self, job_id: str) -> str:
        """Return the key of a job's hash."""
        return self._job_prefix + job_id

    async def enqueue(
        self,
        job_type: str,
        payload: Mapping[str, Any] | None = None,
        *,
        priority: int = MIN_PRIORITY,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        run_at_ms: int | None = None,
        dedupe_key: str | None = None,
        job_id: str | None = None,
        requeue: bool = False,
        fence: Fence | None = None,
        now_ms: int | None = None,
    ) -> Enqueued:
        """Add a job, due at `run_at_ms` (Redis ms; None: now); return its id.

        With `dedupe_key`, a second enqueue while the first job lives (until its ack
        or death) returns the first job's id and `created=False`; so does a `job_id`
        that is already live. `requeue` journals the job as requeued (from the DLQ). With
        `fence`, an enqueue whose tick is not above the fence's returns `created=False`.
        """
        job = Job(
            id=job_id or uuid.uuid4().hex,
            type=job_type,
            payload=dict(payload or {}),
            priority=priority,
            max_attempts=max_attempts,
            run_at_ms=run_at_ms,
        )
        keys = [
            self._scheduled,
            self._ready,
            self._seq,
            self.job_key(job.id),
            self.journal_key,
            self._wake,
        ]
        if dedupe_key is not None:
            keys.append(self._dedupe_prefix + dedupe_key)
        if fence is not None:
            keys.append(self._fence_prefix + fence.name)
        args: list[ScriptArg] = [
            _now(now_ms),
            job.id,
            job.type,
            json.dumps(job.payload, separators=(",", ":")),
            job.priority,
            job.max_attempts,
            "" if run_at_ms is None else run_at_ms,
            lane_of(job.type, job.payload),
            self._journaling,
            "requeued" if requeue else "enqueued",
        ]
        if fence is not None:
            args.append(fence.tick)
        first_id, created = await ENQUEUE(self._redis, keys, args)
        return Enqueued(id=_text(first_id), created=bool(created))

    async def claim(
        self, worker_id: str, n: int, lease_ms: int, *, now_ms: int | None = None
    ) -> list[Lease]:
        """Lease up to `n` due jobs to `worker_id` for `lease_ms`, highest priority first."""
        _check_lease(lease_ms)
        keys = [
            self._scheduled,
            self._ready,
            self._leases,
            self._seq,
            self.journal_key,
            self._policies,
            self._inflight,
            self._parked_lanes,
        ]
        args: list[ScriptArg] = [
            _now(now_ms),
            worker_id,
            n,
            lease_ms,
            self._job_prefix,
            self._lane_prefix,
            PROMOTE_BATCH,
            self._journaling,
            self._journal_cap,
        ]
        rows = await CLAIM(self._redis, keys, args)
        return [_lease(worker_id, row) for row in rows]

    async def heartbeat(
        self, worker_id: str, leases: Sequence[Lease], lease_ms: int, *, now_ms: int | None = None
    ) -> list[bool]:
        """Extend each lease `worker_id` still holds to now + `lease_ms`; False where lost."""
        _check_lease(lease_ms)
        if not leases:
            return []
        keys = [self._leases, *(self.job_key(lease.job.id) for lease in leases)]
        args: list[ScriptArg] = [_now(now_ms), worker_id, lease_ms]
        args += [lease.token for lease in leases]
        return [bool(held) for held in await HEARTBEAT(self._redis, keys, args)]

    async def ack(self, lease: Lease, *, now_ms: int | None = None) -> bool:
        """Complete the job and delete it; False (nothing changed) if the lease was lost."""
        keys = [
            self._leases,
            self.job_key(lease.job.id),
            self.journal_key,
            self._inflight,
            self._policies,
            self._breaker_lanes,
        ]
        args: list[ScriptArg] = [
            lease.worker_id,
            lease.token,
            self._journaling,
            self._lane_prefix,
            _now(now_ms),
        ]
        return bool(await ACK(self._redis, keys, args))

    async def nack(
        self,
        lease: Lease,
        delay_ms: int = 0,
        error: str = "",
        *,
        permanent: bool = False,
        trips_breaker: bool = True,
        now_ms: int | None = None,
    ) -> Nacked:
        """Fail this delivery: retry after `delay_ms` (Redis time), or dead if out of attempts.

        The delay is relative to Redis `TIME`, not an absolute time from the worker's
        clock, so a worker's clock skew cannot move a retry. A `permanent` failure is
        dead at once; one that `trips_breaker` counts against the lane's breaker.
        """
        if delay_ms < 0:
            raise ValueError("a retry delay cannot be negative")
        keys = [
            self._leases,
            self._scheduled,
            self._ready,
            self._seq,
            self.job_key(lease.job.id),
            self.journal_key,
            self._inflight,
            self._policies,
            self._breaker_lanes,
        ]
        args: list[ScriptArg] = [
            _now(now_ms),
            lease.worker_id,
            lease.token,
            delay_ms,
            error,
            self._journaling,
            self._lane_prefix,
            "1" if permanent else "",
            "1" if trips_breaker else "",
        ]
        reply = await NACK(self._redis, keys, args)
        status = _text(reply[0])
        if status == "refused":
            return Nacked(refused=True)
        if status == "retrying":
            return Nacked(retry_at_ms=int(reply[1]))
        return Nacked(dead=_dead(reply[1]))

    async def release(self, lease: Lease) -> bool:
        """Hand the job back to the ready set without using up an attempt (graceful stop)."""
        keys = [
            self._leases,
            self._ready,
            self._seq,
            self.job_key(lease.job.id),
            self.journal_key,
            self._inflight,
        ]
        args: list[ScriptArg] = [lease.worker_id, lease.token, self._journaling]
        return bool(await RELEASE(self._redis, keys, args))

    async def reclaim(self, *, now_ms: int | None = None) -> tuple[int, list[DeadJob]]:
        """Return expired leases to the ready set; return (how many, jobs that died)."""
        keys = [self._leases, self._ready, self._seq, self.journal_key, self._inflight]
        args: list[ScriptArg] = [_now(now_ms), RECLAIM_BATCH, self._job_prefix, self._journaling]
        requeued, *dead = await RECLAIM(self._redis, keys, args)
        return int(requeued), [_dead(flat) for flat in dead]

    async def wait_for_work(self, timeout_s: float) -> bool:
        """Block until an enqueue signals a job due now, or `timeout_s`; True if signalled.

        Each due enqueue pushes one token and each wait takes one, so a burst of jobs
        wakes as many idle workers. The block is Redis's (`BLPOP`), in real time.
        """
        return await self._redis.blpop([self._wake], timeout=timeout_s) is not None

    async def counts(self) -> Counts:
        """Return how many jobs are scheduled, ready, leased and parked; the journal backlog."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for sorted_set in (self._scheduled, self._ready, self._leases):
                _ = pipe.zcard(sorted_set)
            _ = pipe.xlen(self.journal_key)
            scheduled, ready, leased, journal = await pipe.execute()
        return Counts(
            scheduled=int(scheduled),
            ready=int(ready),
            leased=int(leased),
            parked=sum((await self.parked()).values()),
            journal=int(journal),
        )

    async def set_policy(self, job_type: str, policy: LanePolicy | None) -> None:
        """Set (or with None, remove) the limits and breaker of every lane of `job_type`."""
        if policy is None:
            await self._redis.hdel(self._policies, job_type)
        else:
            await self._redis.hset(self._policies, job_type, policy.to_json())

    async def set_default_policies(self, defaults: Mapping[str, LanePolicy]) -> None:
        """Set each type's policy unless it already has one (an operator's choice wins)."""
        for job_type, policy in defaults.items():
            await self._redis.hsetnx(self._policies, job_type, policy.to_json())

    async def policies(self) -> dict[str, LanePolicy]:
        """Return the policies by job type."""
        raw = await self._redis.hgetall(self._policies)
        return {_text(k): LanePolicy.from_json(v) for k, v in raw.items()}

    async def breaker(self, lane: str) -> Breaker:
        """Return the lane's breaker (closed, with nothing counted, if it never saw a call)."""
        fields = {
            _text(k): _text(v)
            for k, v in (await self._redis.hgetall(self._lane_key("breaker", lane))).items()
        }
        state = BreakerState(fields.get("state", BreakerState.CLOSED))
        return Breaker(
            lane=lane,
            state=state,
            calls=int(fields.get("calls", 0)),
            failures=int(fields.get("failures", 0)),
            open_until_ms=int(fields["until"]) if state is not BreakerState.CLOSED else None,
        )

    async def breakers(self) -> list[Breaker]:
        """Return every lane's breaker that has seen a call, by lane."""
        lanes = sorted(_text(lane) for lane in await self._redis.smembers(self._breaker_lanes))
        return [await self.breaker(lane) for lane in lanes]

    async def parked(self) -> dict[str, int]:
        """Return how many jobs each lane holds back now (open breaker, cap or rate)."""
        lanes = [_text(lane) for lane in await self._redis.smembers(self._parked_lanes)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for lane in lanes:
                _ = pipe.zcard(self._lane_key("parked", lane))
            sizes = await pipe.execute()
        return {lane: int(size) for lane, size in zip(lanes, sizes, strict=True) if size}

    async def in_flight(self) -> dict[str, int]:
        """Return how many jobs of each lane are running now."""
        raw = await self._redis.hgetall(self._inflight)
        return {_text(k): int(v) for k, v in raw.items()}

    async def owner(self, job_id: str) -> str | None:
        """Return the worker that holds the job's lease, or None."""
        if await self._redis.zscore(self._leases, job_id) is None:
            return None
        owner = await self._redis.hget(self.job_key(job_id), "owner")
        return None if owner is None else _text(owner)

    async def peek(self, job_id: str) -> dict[str, str] | None:
        """Return the job's hash as text (its live state), or None once it left Redis."""
        fields = await self._redis.hgetall(self.job_key(job_id))
        return {_text(k): _text(v) for k, v in fields.items()} or None

    async def held_by(self, worker_id: str) -> set[str]:
        """Return the ids of the jobs whose leases `worker_id` holds (two round trips)."""
        # Without scores, ZRANGE answers a flat list of members (the stub allows pairs).
        leased: list[bytes] = await self._redis.zrange(self._leases, 0, -1)  # type: ignore[assignment]
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in leased:
                _ = pipe.hget(self.job_key(_text(job_id)), "owner")
            owners = await pipe.execute()
        return {
            _text(job_id)
            for job_id, owner in zip(leased, owners, strict=True)
            if owner is not None and _text(owner) == worker_id
        }

    def _lane_key(self, kind: str, lane: str) -> str:
        return f"{self._lane_prefix}{kind}:{lane}"


def _now(now_ms: int | None) -> ScriptArg:
    return "" if now_ms is None else now_ms


def _check_lease(lease_ms: int) -> None:
    if lease_ms < 1:
        raise ValueError("a lease must last at least 1 ms")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _lease(worker_id: str, row: Sequence[Any]) -> Lease:
    job_id, job_type, payload, priority, attempts, max_attempts, run_at, deadline = row
    job = Job(
        id=_text(job_id),
        type=_text(job_type),
        payload=json.loads(payload),
        priority=int(priority),
        attempts=int(attempts),
        max_attempts=int(max_attempts),
        run_at_ms=int(run_at),
    )
    return Lease(job=job, worker_id=worker_id, deadline_ms=int(deadline))


def _dead(flat: Sequence[bytes | str]) -> DeadJob:
    fields = {_text(k): _text(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
    job = Job(
        id=fields["id"],
        type=fields["type"],
        payload=json.loads(fields["payload"]),
        priority=int(fields["priority"]),
        attempts=int(fields["attempts"]),
        max_attempts=int(fields["max_attempts"]),
        run_at_ms=int(fields["run_at"]),
    )
    return DeadJob(job=job, error=fields.get("error", ""))
