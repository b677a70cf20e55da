"""The scheduler's HTTP contract.

- `POST /v1/jobs`: enqueue one job; 201 `{"id"}` with `Location`, or 200 with
  `"deduplicated": true` and the first job's id when its dedupe key is live.
- `POST /v1/jobs/bulk`: up to the bulk limit; every job is validated (schema, attempt
  cap, dedupe keys unique in the request) before any is enqueued; results in order.
- `GET /v1/jobs/{id}`: live state from Redis, else the last recorded one from
  PostgreSQL, with the audit history (drained from the journal: it can trail by ~0.2 s).
- `GET /v1/dlq`, `GET /v1/dlq/{id}`, `POST /v1/dlq/requeue`, `POST /v1/dlq/purge`:
  the dead-letter queue, behind the admin token.
- `GET /v1/lanes`: each lane's circuit breaker, running and parked jobs, and the
  policies; `PUT`/`DELETE /v1/policies/{type}` (admin) set or remove a type's limits.
`max_attempts` above the configured cap is a 422, not silently clamped. Times: `run_at`
is an absolute instant on Redis' clock (the clock every lease and retry uses);
`delay_ms` is added to Redis `TIME`, read once per request, so the API host's clock never
moves a job. Errors are problem+json; Redis or PostgreSQL down is a 503.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.web import AdminDep, ProblemError
from scheduler import dlq
from scheduler.domain import BreakerPolicy, LanePolicy
from scheduler.jobs import job_status
from scheduler.models import (
    BreakerIn,
    BulkEnqueued,
    BulkIn,
    DeadDetailOut,
    DeadOut,
    DeadPage,
    DeadSelector,
    Enqueued,
    JobIn,
    JobOut,
    JobType,
    LaneOut,
    LanesOut,
    PolicyIn,
    Purged,
    Requeued,
)
from scheduler.queue import Breaker, RedisQueue

ENQUEUE_CONCURRENCY = 64
"""Redis round trips in flight at once for a bulk request."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Scheduler:
    """What the routes work on, built by the app's lifespan."""

    queue: RedisQueue
    engine: AsyncEngine
    count_enqueued: Callable[[str], None]
    max_attempts_cap: int
    bulk_limit: int


async def get_scheduler(request: Request) -> Scheduler:
    """Return the app's wiring (built in the lifespan)."""
    scheduler: Scheduler = request.app.state.scheduler
    return scheduler


SchedulerDep = Annotated[Scheduler, Depends(get_scheduler)]
PathId = Annotated[str, Path(min_length=1, max_length=128)]

jobs_router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
dlq_router = APIRouter(prefix="/v1/dlq", tags=["dead-letter queue"])
lanes_router = APIRouter(prefix="/v1", tags=["lanes"])

_ADMIN: dict[int | str, dict[str, str]] = {401: {"description": "Admin token required"}}


@jobs_router.post(
    "",
    status_code=201,
    responses={200: {"model": Enqueued, "description": "Deduplicated: an earlier job's id"}},
    summary="Enqueue a job",
)
async def enqueue(body: JobIn, scheduler: SchedulerDep, response: Response) -> Enqueued:
    """Enqueue the job; 201 with `Location`, or 200 when its dedupe key is live."""
    _check(scheduler, [body])
    (result,) = await _enqueue_all(scheduler, [body])
    if result.deduplicated:
        response.status_code = status.HTTP_200_OK
    else:
        response.headers["Location"] = f"/v1/jobs/{result.id}"
    return result


@jobs_router.post(
    "/bulk",
    status_code=201,
    responses={200: {"model": BulkEnqueued, "description": "Every job was deduplicated"}},
    summary="Enqueue many jobs",
)
async def enqueue_bulk(body: BulkIn, scheduler: SchedulerDep, response: Response) -> BulkEnqueued:
    """Validate every job, then enqueue them all; 201 unless every one was deduplicated."""
    _check(scheduler, body.jobs, bulk=True)
    results = await _enqueue_all(scheduler, body.jobs)
    if all(result.deduplicated for result in results):
        response.status_code = status.HTTP_200_OK
    return BulkEnqueued(jobs=results)


@jobs_router.get(
    "/{job_id}",
    responses={404: {"description": "No such job"}},
    summary="A job's state, attempts and history",
)
async def read_job(job_id: PathId, scheduler: SchedulerDep) -> JobOut:
    """Live state from Redis, else the last recorded state; history trails by about 1 s."""
    found = await job_status(scheduler.queue, scheduler.engine, job_id)
    if found is None:
        raise ProblemError(404, "Unknown job", f"no job has the id {job_id!r}")
    return JobOut.model_validate(found)


@dlq_router.get("", responses=_ADMIN, summary="List dead jobs")
async def list_dead(
    scheduler: SchedulerDep,
    _: AdminDep,
    job_type: Annotated[JobType | None, Query(alias="type")] = None,
    limit: Annotated[int, Query(ge=1, le=dlq.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=1_000)] = None,
) -> DeadPage:
    """Dead jobs, newest first, `limit` per page; `next_cursor` continues."""
    try:
        page = await dlq.list_dead(scheduler.engine, job_type=job_type, limit=limit, cursor=cursor)
    except dlq.InvalidCursorError as exc:
        raise ProblemError(422, "Invalid cursor", str(exc)) from None
    items = [DeadOut.model_validate(entry) for entry in page.entries]
    return DeadPage(items=items, next_cursor=page.next_cursor)


@dlq_router.get(
    "/{job_id}",
    responses=_ADMIN | {404: {"description": "Not in the DLQ"}},
    summary="Inspect a dead job",
)
async def inspect_dead(job_id: PathId, scheduler: SchedulerDep, _: AdminDep) -> DeadDetailOut:
    """The dead job's error, attempts, payload and audit history."""
    detail = await dlq.inspect(scheduler.engine, job_id)
    if detail is None:
        raise ProblemError(404, "Not in the dead-letter queue", f"no dead job {job_id!r}")
    return DeadDetailOut.model_validate(detail)


@dlq_router.post("/requeue", responses=_ADMIN, summary="Requeue")
async def requeue_dead(body: DeadSelector, scheduler: SchedulerDep, _: AdminDep) -> Requeued:
    """Move the selected dead jobs back to the queue with fresh attempts."""
    moved = await dlq.requeue(scheduler.engine, scheduler.queue, body.selection())
    return Requeued(requeued=moved)


@dlq_router.post("/purge", responses=_ADMIN, summary="Purge")
async def purge_dead(body: DeadSelector, scheduler: SchedulerDep, _: AdminDep) -> Purged:
    """Delete the selected dead jobs for good."""
    return Purged(purged=await dlq.purge(scheduler.engine, body.selection()))


@lanes_router.get("/lanes", summary="Breakers, running and parked jobs by lane")
async def read_lanes(scheduler: SchedulerDep) -> LanesOut:
    """Every lane that has a breaker, a running job or a parked one; the policies by type."""
    queue = scheduler.queue
    breakers = {breaker.lane: breaker for breaker in await queue.breakers()}
    running, parked = await queue.in_flight(), await queue.parked()
    names = sorted(breakers.keys() | running.keys() | parked.keys())
    lanes = [
        _lane(breakers.get(name) or await queue.breaker(name), running, parked) for name in names
    ]
    policies = {name: _policy_out(policy) for name, policy in (await queue.policies()).items()}
    return LanesOut(lanes=lanes, policies=policies)


@lanes_router.put("/policies/{job_type}", responses=_ADMIN, summary="Set a type's limits")
async def set_policy(
    job_type: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")],
    body: PolicyIn,
    scheduler: SchedulerDep,
    _: AdminDep,
) -> PolicyIn:
    """Set the concurrency cap, rate and breaker of every lane of `job_type`."""
    breaker = None if body.breaker is None else BreakerPolicy(**body.breaker.model_dump())
    policy = LanePolicy(
        concurrency=body.concurrency, rate=body.rate, burst=body.burst, breaker=breaker
    )
    await scheduler.queue.set_policy(job_type, policy)
    return body


@lanes_router.delete(
    "/policies/{job_type}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ADMIN,
    summary="Remove a type's limits",
)
async def remove_policy(job_type: PathId, scheduler: SchedulerDep, _: AdminDep) -> None:
    """Remove the limits of `job_type`: its lanes run unlimited, with no breaker."""
    await scheduler.queue.set_policy(job_type, None)


def _lane(breaker: Breaker, running: dict[str, int], parked: dict[str, int]) -> LaneOut:
    until = breaker.open_until_ms
    return LaneOut(
        lane=breaker.lane,
        breaker=str(breaker.state),
        calls=breaker.calls,
        failures=breaker.failures,
        open_until=None if until is None else _EPOCH + until * _MS,
        running=running.get(breaker.lane, 0),
        parked=parked.get(breaker.lane, 0),
    )


def _policy_out(policy: LanePolicy) -> PolicyIn:
    breaker = None if policy.breaker is None else BreakerIn(**vars(policy.breaker))
    return PolicyIn(
        concurrency=policy.concurrency, rate=policy.rate, burst=policy.burst, breaker=breaker
    )


def _check(scheduler: Scheduler, jobs: list[JobIn], *, bulk: bool = False) -> None:
    """Refuse the request before any enqueue: too many jobs, attempts over the cap, repeats."""
    if len(jobs) > scheduler.bulk_limit:
        raise ProblemError(
            422, "Too many jobs", f"{len(jobs)} jobs; at most {scheduler.bulk_limit} per request"
        )
    for index, job in enumerate(jobs):
        if job.max_attempts > scheduler.max_attempts_cap:
            raise ProblemError(
                422,
                "max_attempts above the cap",
                f"{f'jobs[{index}].' if bulk else ''}max_attempts is {job.max_attempts}; "
                f"this scheduler runs a job at most {scheduler.max_attempts_cap} times",
                cap=scheduler.max_attempts_cap,
            )
    keys = [job.dedupe_key for job in jobs if job.dedupe_key is not None]
    if len(keys) != len(set(keys)):
        raise ProblemError(
            422, "Repeated dedupe key", "each dedupe_key may appear once per request"
        )


async def _enqueue_all(scheduler: Scheduler, jobs: list[JobIn]) -> list[Enqueued]:
    """Enqueue `jobs` (at most `ENQUEUE_CONCURRENCY` at once); results in request order."""
    now_ms = await _redis_now_ms(scheduler) if any(job.delay_ms for job in jobs) else 0
    gate = asyncio.Semaphore(ENQUEUE_CONCURRENCY)

    async def one(job: JobIn) -> Enqueued:
        async with gate:
            return await _enqueue_one(scheduler, job, now_ms)

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def _enqueue_one(scheduler: Scheduler, body: JobIn, now_ms: int) -> Enqueued:
    run_at_ms = _run_at_ms(body, now_ms)
    result = await scheduler.queue.enqueue(
        body.type,
        body.payload,
        priority=body.priority,
        max_attempts=body.max_attempts,
        run_at_ms=run_at_ms,
        dedupe_key=body.dedupe_key,
    )
    if result.created:
        scheduler.count_enqueued(body.type)
    return Enqueued(id=result.id, deduplicated=not result.created)


def _run_at_ms(body: JobIn, now_ms: int) -> int | None:
    """Return the job's run time in Redis milliseconds (None: due now)."""
    if body.run_at is not None:
        return (body.run_at - _EPOCH) // _MS
    if body.delay_ms:
        return now_ms + body.delay_ms
    return None


async def _redis_now_ms(scheduler: Scheduler) -> int:
    """Return Redis `TIME` in ms: the clock the queue schedules on."""
    seconds, micros = await scheduler.queue.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000
