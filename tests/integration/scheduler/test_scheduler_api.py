"""The scheduler API over ASGI on the real Redis and PostgreSQL: enqueue, status, the DLQ."""

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.clock import ManualClock
from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from labs.testing.pytest_plugin import DisposableRedis
from labs.web.serve import serve_in_thread
from scheduler.app import SchedulerSettings, create_app
from scheduler.domain import Job, RetryPolicy
from scheduler.handlers import HandlerContext, builtin_handlers
from scheduler.queue import RedisQueue
from scheduler.store import JournalDrain, audit_table
from scheduler.worker import Worker

TOKEN = "scheduler-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
PROBLEM = "application/problem+json"
NO_BACKOFF = RetryPolicy(base_ms=0, cap_ms=0)


@dataclass
class Api:
    """The app under test, a client of it, and handles on what it writes to."""

    app: FastAPI
    http: httpx.AsyncClient
    queue: RedisQueue
    db: AsyncEngine
    clock: ManualClock
    write_dead: Callable[[AsyncEngine, Job, str, int], Awaitable[None]]

    async def flush_audit(self) -> None:
        """Drain the journal into the audit log now (the app's drain runs every 0.2 s)."""
        drain: JournalDrain = self.app.state.drain
        await drain.drain_all()

    async def run_worker(self) -> None:
        """Run a worker until nothing is due, then drain the journal."""
        rng = random.Random(5)
        worker = Worker(
            self.queue,
            # No job here is a webhook: the client never opens a connection.
            builtin_handlers(
                HandlerContext(self.clock, rng, self.queue.redis, httpx.AsyncClient())
            ),
            clock=self.clock,
            rng=rng,
            retry=NO_BACKOFF,
        )
        await asyncio.wait_for(worker.run(burst=True), 10)
        await self.flush_audit()

    async def bury(self, job_type: str, error: str = "boom", **job: object) -> str:
        """Put a job straight into the DLQ, as the drain writes a dead one; return its id."""
        dead = Job(id=f"dead-{random.getrandbits(48):x}", type=job_type, attempts=5, **job)  # type: ignore[arg-type]
        await self.write_dead(self.db, dead, error, round(self.clock.time() * 1000))
        return dead.id


def settings(keys: KeyBuilder, db_schema: str, **extra: object) -> SchedulerSettings:
    """Settings on the test's own keys and schema, with a known admin token."""
    fields = {
        "admin_token": SecretStr(TOKEN),
        "key_prefix": keys.prefix,
        "database_schema": db_schema,
    }
    return SchedulerSettings.model_validate(fields | extra)


@pytest.fixture
async def api(
    lab_urls: ServerUrls,
    keys: KeyBuilder,
    db_schema: str,
    db: AsyncEngine,
    bury: Callable[[AsyncEngine, Job, str, int], Awaitable[None]],
) -> AsyncIterator[Api]:
    """The scheduler app with its lifespan running, and an ASGI client."""
    clock = ManualClock()
    app = create_app(settings(keys, db_schema, bulk_limit=5), urls=lab_urls, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://scheduler") as http,
    ):
        yield Api(app, http, app.state.scheduler.queue, db, clock, bury)


def assert_problem(answer: httpx.Response, status: int, words: str) -> None:
    """The answer is a problem+json of `status` whose detail or title mentions `words`."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert words in f"{body['title']} {body.get('detail', '')}", body


async def test_enqueue_answers_201_with_location_and_the_job_reads_back_live(api: Api) -> None:
    """A new job is 201 + Location; GET shows it queued in Redis, then its enqueued history."""
    answer = await api.http.post(
        "/v1/jobs", json={"type": "noop", "payload": {"n": 1}, "priority": 7}
    )
    assert answer.status_code == 201
    job_id = answer.json()["id"]
    assert answer.json()["deduplicated"] is False
    assert answer.headers["location"] == f"/v1/jobs/{job_id}"
    await api.flush_audit()
    job = (await api.http.get(f"/v1/jobs/{job_id}")).json()
    assert (job["state"], job["source"], job["attempts"], job["max_attempts"]) == (
        "queued",
        "redis",
        0,
        5,
    )
    assert (job["type"], job["payload"], job["priority"]) == ("noop", {"n": 1}, 7)
    assert [(h["event"], h["attempt"]) for h in job["history"]] == [("enqueued", 0)]


async def test_delay_is_relative_to_redis_time_and_run_at_is_absolute(
    api: Api, redis: Redis
) -> None:
    """delay_ms lands between Redis TIME before and after + delay; run_at is kept to the ms."""
    before_s, before_us = await redis.time()
    delayed = await api.http.post("/v1/jobs", json={"type": "noop", "delay_ms": 60_000})
    after_s, after_us = await redis.time()
    at = datetime(2031, 5, 6, 7, 8, 9, 123_000, tzinfo=UTC)
    absolute = await api.http.post(
        "/v1/jobs", json={"type": "noop", "run_at": "2031-05-06T09:08:09.123+02:00"}
    )
    job = (await api.http.get(f"/v1/jobs/{delayed.json()['id']}")).json()
    run_at = datetime.fromisoformat(job["run_at"])
    earliest = datetime.fromtimestamp(before_s + before_us / 1e6, UTC) + timedelta(minutes=1)
    latest = datetime.fromtimestamp(after_s + after_us / 1e6, UTC) + timedelta(minutes=1)
    assert job["state"] == "scheduled"
    assert earliest - timedelta(milliseconds=1) <= run_at <= latest
    scheduled = (await api.http.get(f"/v1/jobs/{absolute.json()['id']}")).json()
    assert datetime.fromisoformat(scheduled["run_at"]) == at
    counts = await api.queue.counts()
    assert (counts.live, counts.scheduled) == (2, 2)


async def test_a_dedupe_hit_answers_200_with_the_first_id(api: Api) -> None:
    """The second enqueue with a live dedupe key is 200, deduplicated, the first id, no copy."""
    body = {"type": "noop", "dedupe_key": "invoice-42"}
    first = await api.http.post("/v1/jobs", json=body)
    second = await api.http.post("/v1/jobs", json=body | {"payload": {"other": True}})
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == {"id": first.json()["id"], "deduplicated": True}
    assert "location" not in second.headers
    assert (await api.queue.counts()).ready == 1


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"type": "noop", "max_attempts": 6}, "at most 5 times"),
        ({"type": "noop", "run_at": "2030-01-01T00:00:00Z", "delay_ms": 5}, "not both"),
        ({"type": "noop", "run_at": "2030-01-01T00:00:00"}, "timezone"),
        ({"type": "noop", "priority": 10}, "priority"),
        ({"type": "no spaces"}, "type"),
        ({"type": "noop", "delay_ms": -1}, "delay_ms"),
        ({"type": "noop", "typo": 1}, "typo"),
    ],
)
async def test_invalid_jobs_are_422_problems_and_nothing_is_enqueued(
    api: Api, body: dict[str, object], words: str
) -> None:
    """Attempts over the cap, run_at with delay_ms, a naive time, bad fields: 422, no job."""
    assert_problem(await api.http.post("/v1/jobs", json=body), 422, words)
    assert (await api.queue.counts()).live == 0


async def test_bulk_enqueues_in_order_and_validates_everything_first(api: Api) -> None:
    """Bulk answers ids in order; one bad job (or too many, or a repeated key) enqueues none."""
    jobs = [{"type": "noop", "payload": {"n": n}} for n in range(4)]
    answer = await api.http.post("/v1/jobs/bulk", json={"jobs": jobs})
    assert answer.status_code == 201
    ids = [each["id"] for each in answer.json()["jobs"]]
    payloads = [(await api.http.get(f"/v1/jobs/{i}")).json()["payload"] for i in ids]
    assert payloads == [{"n": n} for n in range(4)]
    bad_last = [*jobs[:2], {"type": "noop", "max_attempts": 50}]
    too_many = jobs + jobs[:2]
    repeated = [{"type": "noop", "dedupe_key": "k"}, {"type": "noop", "dedupe_key": "k"}]
    assert_problem(
        await api.http.post("/v1/jobs/bulk", json={"jobs": bad_last}), 422, "jobs[2].max_attempts"
    )
    assert_problem(await api.http.post("/v1/jobs/bulk", json={"jobs": too_many}), 422, "at most 5")
    assert_problem(await api.http.post("/v1/jobs/bulk", json={"jobs": repeated}), 422, "dedupe")
    assert (await api.queue.counts()).ready == len(jobs)


async def test_a_bulk_of_only_dedupe_hits_answers_200(api: Api) -> None:
    """Re-sending a bulk whose jobs all carry live dedupe keys creates nothing: 200, same ids."""
    jobs = [{"type": "noop", "dedupe_key": f"k{n}"} for n in range(3)]
    first = await api.http.post("/v1/jobs/bulk", json={"jobs": jobs})
    again = await api.http.post("/v1/jobs/bulk", json={"jobs": jobs})
    assert (first.status_code, again.status_code) == (201, 200)
    assert [j["id"] for j in again.json()["jobs"]] == [j["id"] for j in first.json()["jobs"]]
    assert all(j["deduplicated"] for j in again.json()["jobs"])


async def test_a_finished_job_reads_back_from_postgres_and_an_unknown_one_is_404(
    api: Api,
) -> None:
    """After the worker acks it, the job's state and full history come from PostgreSQL."""
    job_id = (await api.http.post("/v1/jobs", json={"type": "noop"})).json()["id"]
    await api.flush_audit()
    await api.run_worker()
    job = (await api.http.get(f"/v1/jobs/{job_id}")).json()
    assert (job["state"], job["source"], job["attempts"]) == ("succeeded", "postgres", 1)
    assert [h["event"] for h in job["history"]] == ["enqueued", "started", "succeeded"]
    assert_problem(await api.http.get("/v1/jobs/no-such-job"), 404, "no-such-job")


async def test_a_job_that_dies_is_listed_and_inspected_in_the_dlq(api: Api) -> None:
    """A job out of attempts is in GET /v1/dlq and GET /v1/dlq/{id} with error and history."""
    body = {"type": "fail", "payload": {"message": "nope"}, "max_attempts": 2}
    job_id = (await api.http.post("/v1/jobs", json=body)).json()["id"]
    await api.flush_audit()
    await api.run_worker()
    (item,) = (await api.http.get("/v1/dlq", headers=ADMIN)).json()["items"]
    assert (item["job_id"], item["type"], item["attempts"]) == (job_id, "fail", 2)
    detail = (await api.http.get(f"/v1/dlq/{job_id}", headers=ADMIN)).json()
    assert detail["error"] == "JobFailedError('nope')"
    assert [h["event"] for h in detail["history"]] == [
        "enqueued",
        "started",
        "failed",
        "retried",
        "started",
        "failed",
        "dead",
    ]
    job = (await api.http.get(f"/v1/jobs/{job_id}")).json()
    assert (job["state"], job["error"]) == ("dead", "JobFailedError('nope')")
    assert_problem(await api.http.get("/v1/dlq/not-dead", headers=ADMIN), 404, "not-dead")


async def test_requeue_puts_the_job_back_with_fresh_attempts_and_a_worker_runs_it(
    api: Api,
) -> None:
    """A requeued dead job leaves the DLQ, keeps its id and priority, and runs to success."""
    job_id = await api.bury("noop", priority=4, max_attempts=3)
    answer = await api.http.post("/v1/dlq/requeue", json={"ids": [job_id]}, headers=ADMIN)
    assert answer.json() == {"requeued": 1}
    assert (await api.http.get("/v1/dlq", headers=ADMIN)).json()["items"] == []
    live = (await api.http.get(f"/v1/jobs/{job_id}")).json()
    assert (live["state"], live["attempts"], live["max_attempts"]) == ("queued", 0, 3)
    assert live["priority"] == 4
    await api.flush_audit()
    await api.run_worker()
    done = (await api.http.get(f"/v1/jobs/{job_id}")).json()
    assert done["state"] == "succeeded"
    assert [h["event"] for h in done["history"]] == ["dead", "requeued", "started", "succeeded"]
    assert (await api.queue.counts()).live == 0


async def test_requeue_by_type_takes_only_that_type(api: Api) -> None:
    """Requeue by type moves every dead job of that type and none of the others."""
    mail = [await api.bury("mail") for _ in range(3)]
    other = await api.bury("report")
    answer = await api.http.post("/v1/dlq/requeue", json={"type": "mail"}, headers=ADMIN)
    assert answer.json() == {"requeued": 3}
    left = (await api.http.get("/v1/dlq", headers=ADMIN)).json()["items"]
    assert [item["job_id"] for item in left] == [other]
    assert (await api.queue.counts()).ready == len(mail)


async def test_a_requeue_retried_after_a_crash_does_not_duplicate_the_job(api: Api) -> None:
    """If a requeue enqueued the job but died before its commit, the retry adds no copy."""
    job_id = await api.bury("noop")
    # What the crashed attempt left behind: the job live in Redis (here already running
    # on a worker), and its dead row still in PostgreSQL.
    await api.queue.enqueue("noop", job_id=job_id, requeue=True)
    (lease,) = await api.queue.claim("w-1", 1, 60_000)
    answer = await api.http.post("/v1/dlq/requeue", json={"ids": [job_id]}, headers=ADMIN)
    assert answer.json() == {"requeued": 1}
    counts = await api.queue.counts()
    assert (counts.live, counts.leased) == (1, 1)
    assert await api.queue.owner(job_id) == "w-1"
    assert await api.queue.ack(lease)
    assert (await api.http.get("/v1/dlq", headers=ADMIN)).json()["items"] == []


async def test_concurrent_requeues_move_each_job_once(api: Api) -> None:
    """Two requeues of the same type at once: every job requeued exactly once in total."""
    for _ in range(6):
        await api.bury("mail")
    answers = await asyncio.gather(
        *(api.http.post("/v1/dlq/requeue", json={"type": "mail"}, headers=ADMIN) for _ in "ab")
    )
    assert sum(answer.json()["requeued"] for answer in answers) == 6
    assert (await api.queue.counts()).ready == 6


async def test_the_dlq_pages_newest_first_by_cursor(api: Api) -> None:
    """Pages of 2 walk 5 dead jobs newest first, each once, filtered by type when asked."""
    buried = []
    for n in range(5):
        buried.append(await api.bury("even" if n % 2 == 0 else "odd"))
        api.clock.advance(1)
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await api.http.get("/v1/dlq", params=params, headers=ADMIN)).json()
        assert len(page["items"]) <= 2
        seen += [item["job_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == buried[::-1]
    odd = (await api.http.get("/v1/dlq", params={"type": "odd"}, headers=ADMIN)).json()
    assert [item["job_id"] for item in odd["items"]] == [buried[3], buried[1]]
    forged = await api.http.get("/v1/dlq", params={"cursor": "bm90LWEtY3Vyc29y"}, headers=ADMIN)
    assert_problem(forged, 422, "cursor")


async def test_purge_by_ids_type_and_age_and_never_everything_by_default(api: Api) -> None:
    """Purge counts what it deleted; an empty or mixed selection is a 422."""
    old = await api.bury("mail")
    api.clock.advance(3600)
    cutoff = datetime.fromtimestamp(api.clock.time(), UTC).isoformat()
    by_id, typed, kept = await api.bury("mail"), await api.bury("report"), await api.bury("mail")

    async def purge(body: dict[str, object]) -> httpx.Response:
        return await api.http.post("/v1/dlq/purge", json=body, headers=ADMIN)

    assert_problem(await purge({}), 422, "select dead jobs by ids")
    assert_problem(await purge({"ids": [by_id], "type": "mail"}), 422, "not both")
    assert (await purge({"older_than": cutoff})).json() == {"purged": 1}
    assert (await purge({"ids": [by_id, old]})).json() == {"purged": 1}
    assert (await purge({"type": "report"})).json() == {"purged": 1}
    left = (await api.http.get("/v1/dlq", headers=ADMIN)).json()["items"]
    assert [item["job_id"] for item in left] == [kept]
    assert typed not in {item["job_id"] for item in left}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/dlq", None),
        ("GET", "/v1/dlq/some-id", None),
        ("POST", "/v1/dlq/requeue", {"type": "mail"}),
        ("POST", "/v1/dlq/purge", {"type": "mail"}),
    ],
)
async def test_dlq_routes_need_the_admin_token(
    api: Api, method: str, path: str, body: dict[str, str] | None
) -> None:
    """No token or a wrong one: 401 problem+json with a Bearer challenge, nothing done."""
    kept = await api.bury("mail")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        answer = await api.http.request(method, path, json=body, headers=headers)
        assert_problem(answer, 401, "")
        assert answer.headers["www-authenticate"].startswith("Bearer")
    items = (await api.http.get("/v1/dlq", headers=ADMIN)).json()["items"]
    assert [item["job_id"] for item in items] == [kept]


async def test_metrics_count_enqueues_by_type_and_read_depths_at_scrape_time(api: Api) -> None:
    """Enqueued counter by type; queue and DLQ gauges reflect the servers when scraped."""
    await api.http.post("/v1/jobs", json={"type": "noop"})
    await api.http.post("/v1/jobs", json={"type": "noop", "delay_ms": 60_000})
    await api.http.post("/v1/jobs", json={"type": "noop", "dedupe_key": "d"})
    await api.http.post("/v1/jobs", json={"type": "noop", "dedupe_key": "d"})
    await api.bury("mail")
    text = (await api.http.get("/metrics")).text
    assert 'scheduler_jobs_enqueued_total{type="noop"} 3.0' in text
    assert 'scheduler_queue_jobs{queue="default",set="ready"} 2.0' in text
    assert 'scheduler_queue_jobs{queue="default",set="scheduled"} 1.0' in text
    assert 'scheduler_queue_jobs{queue="default",set="leased"} 0.0' in text
    assert "scheduler_dlq_jobs 1.0" in text


async def test_healthz_checks_redis_and_postgres(api: Api) -> None:
    """/healthz makes a round trip to both servers."""
    answer = await api.http.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["checks"] == {"redis": "ok", "postgres": "ok"}


def test_redis_down_is_a_503_problem_and_metrics_still_answer(
    lab_urls: ServerUrls, disposable_redis: DisposableRedis, keys: KeyBuilder, db_schema: str
) -> None:
    """SIGKILL Redis: a 503 problem with Retry-After, NaN depths; restarted, it enqueues again."""
    urls = ServerUrls(redis_url=disposable_redis.url, database_url=lab_urls.database_url)
    app = create_app(settings(keys, db_schema), urls=urls, clock=ManualClock())
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url) as http:
        assert http.post("/v1/jobs", json={"type": "noop"}).status_code == 201
        disposable_redis.kill()
        answer = http.post("/v1/jobs", json={"type": "noop"})
        assert_problem(answer, 503, "Redis unavailable")
        assert answer.headers["retry-after"] == "1"
        assert http.get("/healthz").status_code == 503
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert 'scheduler_queue_jobs{queue="default",set="ready"} NaN' in metrics.text
        assert "scheduler_dlq_jobs 0.0" in metrics.text

        asyncio.run(disposable_redis.start())
        assert http.post("/v1/jobs", json={"type": "noop"}).status_code == 201


async def test_shutdown_drains_the_journal(
    lab_urls: ServerUrls, keys: KeyBuilder, db_schema: str, redis: Redis, db: AsyncEngine
) -> None:
    """Transitions still in the journal when the app stops are written by its shutdown."""
    app = create_app(settings(keys, db_schema), urls=lab_urls, clock=ManualClock())
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://scheduler") as http,
    ):
        job_id = (await http.post("/v1/jobs", json={"type": "noop"})).json()["id"]
    async with db.connect() as conn:
        events = (
            (await conn.execute(select(audit_table.c.event).where(audit_table.c.job_id == job_id)))
            .scalars()
            .all()
        )
    assert events == ["enqueued"]
    assert await redis.exists(RedisQueue(redis, keys).job_key(job_id))


async def test_lanes_show_an_open_breaker_and_policies_are_set_by_the_admin(api: Api) -> None:
    """A policy set over HTTP trips on failures; /v1/lanes and /metrics show the lane open."""
    policy = {"concurrency": 2, "breaker": {"ratio": 1.0, "min_calls": 2, "cooldown_ms": 60_000}}
    assert (await api.http.put("/v1/policies/fail", json=policy)).status_code == 401
    answer = await api.http.put("/v1/policies/fail", json=policy, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    assert_problem(
        await api.http.put("/v1/policies/fail", json={"burst": 3}, headers=ADMIN), 422, "rate"
    )
    for _ in range(5):
        await api.http.post("/v1/jobs", json={"type": "fail"})
    await api.run_worker()
    lanes = (await api.http.get("/v1/lanes")).json()
    [lane] = lanes["lanes"]
    assert (lane["lane"], lane["breaker"], lane["failures"], lane["parked"]) == (
        "fail",
        "open",
        2,
        5,
    )
    assert lanes["policies"]["fail"]["concurrency"] == 2
    metrics = (await api.http.get("/metrics")).text
    assert 'scheduler_lane_breaker_state{lane="fail"} 2.0' in metrics
    assert 'scheduler_queue_jobs{queue="default",set="parked"} 5.0' in metrics
    removed = await api.http.delete("/v1/policies/fail", headers=ADMIN)
    assert removed.status_code == 204
    assert (await api.http.get("/v1/lanes")).json()["policies"] == {}
