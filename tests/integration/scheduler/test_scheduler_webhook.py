"""The `webhook` job type against the real sink, served over TCP, on real Redis."""

import asyncio
import random
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI, Response
from pydantic import SecretStr
from redis.asyncio import Redis

from labs.clients import http_client
from labs.clock import ManualClock
from labs.keys import KeyBuilder
from labs.servers.process import free_port
from labs.settings import ServerUrls
from labs.testing.waiting import until
from labs.web.serve import serve_in_thread
from scheduler.domain import DeadJob, Job, RetryPolicy
from scheduler.handlers import (
    Handler,
    HandlerContext,
    WebhookError,
    WebhookRejectedError,
    builtin_handlers,
)
from scheduler.queue import RedisQueue
from scheduler.sink import WebhookSinkSettings, create_app
from scheduler.worker import Worker

TOKEN = "admin-token-for-tests"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SEED = 11
TINY_TIMEOUT_MS = 50


class Sink:
    """The sink's base URL, with its admin calls.

    Synchronous on purpose: the sink runs on its own thread's event loop, so a call
    that blocks the test's loop for a moment holds up nothing.
    """

    def __init__(self, base_url: str) -> None:
        """Talk to the sink at `base_url`."""
        self.url = base_url

    def hook(self, name: str) -> str:
        """Return the URL of the hook `name`."""
        return f"{self.url}/hooks/{name}"

    def faults(self, **plan: object) -> None:
        """Put `plan` in force (anything left out is off)."""
        httpx.put(f"{self.url}/v1/faults", json=plan, headers=ADMIN).raise_for_status()

    def held(self) -> float:
        """Return how many deliveries a hang holds now, from the sink's metrics."""
        metrics = httpx.get(f"{self.url}/metrics").text
        [value] = [
            line.split()[1]
            for line in metrics.splitlines()
            if line.startswith("webhook_sink_held ")
        ]
        return float(value)

    def received(self) -> dict[str, object]:
        """Return the ledger's totals."""
        answer: dict[str, object] = httpx.get(f"{self.url}/v1/received").json()
        return answer


@pytest.fixture
def sink(lab_urls: ServerUrls, keys: KeyBuilder, redis: Redis) -> Iterator[Sink]:
    """The sink in a thread on the session's Redis; any hang is lifted before it stops."""
    del redis  # requested so that the sink's keys are deleted after it stops
    settings = WebhookSinkSettings(admin_token=SecretStr(TOKEN), key_prefix=keys.prefix, seed=SEED)
    with serve_in_thread(create_app(settings, urls=lab_urls)) as base_url:
        sink = Sink(base_url)
        try:
            yield sink
        finally:
            sink.faults()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The lab's pooled HTTP client, closed after the test."""
    async with http_client() as client:
        yield client


def webhook_handler(http: httpx.AsyncClient, redis: Redis) -> Handler:
    """The built-in `webhook` handler, on a manual clock (so every message says 0 ms)."""
    context = HandlerContext(ManualClock(), random.Random(SEED), redis, http)
    return builtin_handlers(context)["webhook"]


def job(url: str, job_id: str = "job-1", attempts: int = 1, **payload: object) -> Job:
    """A webhook job to `url`, as the worker would hand it over on attempt `attempts`."""
    return Job(id=job_id, type="webhook", payload={"url": url, **payload}, attempts=attempts)


async def request_sent(webhook_job: Job, redis: Redis) -> httpx.Request:
    """Run the handler on a client that notes what it sends; return the one request sent."""
    seen: list[httpx.Request] = []

    async def note(request: httpx.Request) -> None:
        seen.append(request)

    async with http_client(event_hooks={"request": [note]}) as spying:
        await webhook_handler(spying, redis)(webhook_job)
    [request] = seen
    return request


async def test_a_delivery_carries_the_body_and_the_job_id_as_idempotency_key(
    sink: Sink, http: httpx.AsyncClient, redis: Redis, keys: KeyBuilder
) -> None:
    """A 2xx is success; the ledger, read straight from Redis, holds the job id once."""
    webhook = webhook_handler(http, redis)
    await webhook(job(sink.hook("orders"), "job-7", body={"order": 7}))
    ledger = await redis.hgetall(keys.tagged("ledger", "delivered"))
    assert ledger == {b"job-7": b"1"}
    assert sink.received()["by_hook"] == {"orders": 1}


async def test_a_redelivered_job_is_counted_as_a_duplicate(
    sink: Sink, http: httpx.AsyncClient, redis: Redis
) -> None:
    """Delivering one job twice (attempts 1 and 2) is one key, two deliveries, one duplicate."""
    webhook = webhook_handler(http, redis)
    await webhook(job(sink.hook("a"), attempts=1))
    await webhook(job(sink.hook("a"), attempts=2))
    received = sink.received()
    assert (received["deliveries"], received["unique_keys"], received["duplicates"]) == (2, 1, 1)


async def test_caller_headers_are_sent_and_the_attempt_is_announced(
    sink: Sink, http: httpx.AsyncClient, redis: Redis
) -> None:
    """Payload headers go out next to `Idempotency-Key` and `X-Attempt`; the body is JSON."""
    request = await request_sent(job(sink.hook("a"), "job-9", 3, headers={"X-Tenant": "7"}), redis)
    assert request.headers["Idempotency-Key"] == "job-9"
    assert request.headers["X-Attempt"] == "3"
    assert request.headers["X-Tenant"] == "7"
    assert request.headers["Content-Type"] == "application/json"
    assert request.content == b"{}"


@pytest.mark.parametrize(
    ("body", "sent"), [(None, b"null"), ([1, "é"], b'[1,"\\u00e9"]'), ({"a": {}}, b'{"a":{}}')]
)
async def test_any_json_body_is_sent_as_json_and_content_type_may_be_refined(
    sink: Sink, redis: Redis, body: object, sent: bytes
) -> None:
    """Even `null` is sent as a JSON body; a payload's own Content-Type wins, in any case."""
    headers = {"content-type": "application/cloudevents+json"}
    request = await request_sent(job(sink.hook("a"), body=body, headers=headers), redis)
    assert request.content == sent
    assert request.headers.get_list("Content-Type") == ["application/cloudevents+json"]


async def test_an_outage_fails_the_attempt_with_a_retryable_503(
    sink: Sink, http: httpx.AsyncClient, redis: Redis
) -> None:
    """A 503 raises a `WebhookError` a dead-letter reader understands, not a permanent one."""
    sink.faults(outage=True)
    url = sink.hook("a")
    with pytest.raises(WebhookError) as raised:
        await webhook_handler(http, redis)(job(url))
    assert str(raised.value) == f"POST {url}: 503 after 0 ms"
    assert raised.value.status == 503
    assert not isinstance(raised.value, WebhookRejectedError)


async def test_the_error_rate_fails_as_many_deliveries_as_the_seed_says(
    sink: Sink, http: httpx.AsyncClient, redis: Redis
) -> None:
    """With seed 11 and rate 0.3, the failures among 40 deliveries are exactly the seed's."""
    draws = random.Random(SEED)
    expected = sum(draws.random() < 0.3 for _ in range(40))
    assert 0 < expected < 40
    sink.faults(error_rate=0.3)
    webhook = webhook_handler(http, redis)
    failed = 0
    for n in range(40):
        try:
            await webhook(job(sink.hook("a"), f"job-{n}"))
        except WebhookError:
            failed += 1
    assert failed == expected
    assert sink.received()["by_status"] == {"200": 40 - expected, "503": expected}


async def test_a_receiver_that_never_answers_fails_the_attempt_at_its_timeout(
    sink: Sink, http: httpx.AsyncClient, redis: Redis
) -> None:
    """Under `hang`, the tiny timeout ends the attempt with a retryable `WebhookError`."""
    sink.faults(hang=True)
    url = sink.hook("a")
    with pytest.raises(WebhookError) as raised:
        await webhook_handler(http, redis)(job(url, timeout_ms=TINY_TIMEOUT_MS))
    assert str(raised.value) == f"POST {url}: no answer within {TINY_TIMEOUT_MS} ms"
    assert raised.value.status is None
    assert sink.received()["deliveries"] == 0  # never answered, so never recorded


async def test_lifting_the_hang_answers_the_held_deliveries_503(
    sink: Sink, http: httpx.AsyncClient
) -> None:
    """A held delivery waits however long its sender does; a new plan answers it 503."""
    sink.faults(hang=True)
    delivery = asyncio.create_task(
        http.post(sink.hook("a"), json={}, headers={"Idempotency-Key": "k"}, timeout=60)
    )
    await until(lambda: sink.held() == 1, "the sink to hold the delivery")
    assert not delivery.done()
    sink.faults()
    answer = await asyncio.wait_for(delivery, 30)
    assert answer.status_code == 503
    assert answer.json()["fault"] == "hang"
    assert sink.received()["by_status"] == {"503": 1}


async def test_a_refused_connection_fails_the_attempt_naming_the_cause(
    http: httpx.AsyncClient, redis: Redis
) -> None:
    """Nobody listening is a retryable `WebhookError` that says the connection failed."""
    url = f"http://127.0.0.1:{free_port()}/hooks/a"
    with pytest.raises(WebhookError) as raised:
        await webhook_handler(http, redis)(job(url))
    assert str(raised.value).startswith(f"POST {url}: ConnectError after 0 ms (")
    assert raised.value.status is None
    assert isinstance(raised.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize(("path", "status"), [("/hooks/bad%20name", 422), ("/nowhere", 404)])
async def test_a_4xx_is_a_permanent_rejection(
    sink: Sink, http: httpx.AsyncClient, redis: Redis, path: str, status: int
) -> None:
    """A request the receiver refuses as such will never pass: `WebhookRejectedError`."""
    with pytest.raises(WebhookRejectedError) as raised:
        await webhook_handler(http, redis)(job(sink.url + path))
    assert raised.value.status == status
    assert str(raised.value) == f"POST {sink.url}{path}: {status} after 0 ms"


@pytest.mark.parametrize("status", [429, 503])
async def test_a_throttling_answer_carries_its_retry_after_to_the_worker(
    http: httpx.AsyncClient, redis: Redis, status: int
) -> None:
    """A 429 or 503 with `Retry-After: 30` fails the attempt asking for 30 s (worker waits)."""
    throttling = FastAPI()

    @throttling.post("/hooks/a")
    async def refuse() -> Response:
        return Response(status_code=status, headers={"Retry-After": "30"})

    with serve_in_thread(throttling) as url, pytest.raises(WebhookError) as raised:
        await webhook_handler(http, redis)(job(f"{url}/hooks/a"))
    assert (raised.value.status, raised.value.after_ms) == (status, 30_000)


async def test_the_query_string_never_reaches_the_error_message(
    sink: Sink, http: httpx.AsyncClient, redis: Redis
) -> None:
    """A token in the webhook URL's query string stays out of the dead-letter table."""
    sink.faults(outage=True)
    with pytest.raises(WebhookError) as raised:
        await webhook_handler(http, redis)(job(sink.hook("a") + "?token=s3cret"))
    assert "s3cret" not in str(raised.value)


async def test_a_worker_delivers_every_webhook_job_once_through_a_flaky_receiver(
    sink: Sink, http: httpx.AsyncClient, redis: Redis, keys: KeyBuilder
) -> None:
    """20 jobs, rate 0.3: every job id arrives exactly once, after exactly the seed's 503s."""
    draws = random.Random(SEED)
    successes = refusals = 0
    while successes < 20:
        if draws.random() < 0.3:
            refusals += 1
        else:
            successes += 1
    assert refusals > 0
    sink.faults(error_rate=0.3)
    q = RedisQueue(redis, keys.child("q"))
    ids = {
        (await q.enqueue("webhook", {"url": sink.hook("a")}, max_attempts=50)).id for _ in range(20)
    }
    clock, rng = ManualClock(), random.Random(3)
    dead: list[DeadJob] = []

    async def on_dead(job: DeadJob) -> None:
        dead.append(job)

    worker = Worker(
        q,
        builtin_handlers(HandlerContext(clock, rng, redis, http)),
        clock=clock,
        rng=rng,
        concurrency=5,
        retry=RetryPolicy(base_ms=0, cap_ms=0),
        on_dead=on_dead,
    )
    await asyncio.wait_for(worker.run(burst=True), 30)
    assert dead == []
    ledger = await redis.hgetall(keys.tagged("ledger", "delivered"))
    assert ledger == {job_id.encode(): b"1" for job_id in ids}
    assert sink.received() == {
        "deliveries": 20 + refusals,
        "unique_keys": 20,
        "duplicates": 0,
        "by_hook": {"a": 20 + refusals},
        "by_status": {"200": 20, "503": refusals},
    }
