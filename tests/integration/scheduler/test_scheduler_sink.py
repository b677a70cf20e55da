"""The webhook sink on real Redis: ledger, fault admin and errors over HTTP; latency in process."""

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from labs.clock import ManualClock
from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from labs.testing.waiting import until
from labs.web.serve import serve_in_thread
from scheduler.sink import WebhookSinkSettings, create_app

TOKEN = "admin-token-for-tests"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
PROBLEM_JSON = "application/problem+json"


def sink_settings(keys: KeyBuilder, **extra: object) -> WebhookSinkSettings:
    """Settings with the test's own key prefix and a known admin token."""
    fields = {"admin_token": SecretStr(TOKEN), "key_prefix": keys.prefix} | extra
    return WebhookSinkSettings.model_validate(fields)


@pytest.fixture
def sink(lab_urls: ServerUrls, keys: KeyBuilder, redis: Redis) -> Iterator[httpx.Client]:
    """The sink on the session's Redis, as a client sees it (its keys go with `redis`'s)."""
    del redis
    with (
        serve_in_thread(create_app(sink_settings(keys), urls=lab_urls)) as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        yield client


def deliver(sink: httpx.Client, hook: str, key: str) -> httpx.Response:
    """POST an empty JSON body to `hook` with `key` as its idempotency key."""
    return sink.post(f"/hooks/{hook}", json={}, headers={"Idempotency-Key": key})


def test_deliveries_are_counted_by_key_hook_and_status(sink: httpx.Client) -> None:
    """Three keys over two hooks, one of them twice: one duplicate, all answered 200."""
    answers = [deliver(sink, hook, key) for hook, key in [("a", "k1"), ("a", "k2"), ("b", "k3")]]
    again = deliver(sink, "a", "k1")
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json() == {
        "hook": "a",
        "idempotency_key": "k1",
        "deliveries": 1,
        "duplicate": False,
    }
    assert again.json()["deliveries"] == 2
    assert again.json()["duplicate"] is True
    assert sink.get("/v1/received").json() == {
        "deliveries": 4,
        "unique_keys": 3,
        "duplicates": 1,
        "by_hook": {"a": 3, "b": 1},
        "by_status": {"200": 4},
    }


def test_an_outage_answers_503_problems_that_are_counted_but_never_duplicates(
    sink: httpx.Client,
) -> None:
    """Refused deliveries count by status; a key's retry after a 503 is not a duplicate."""
    assert sink.put("/v1/faults", json={"outage": True}, headers=ADMIN).status_code == 200
    refused = deliver(sink, "a", "k1")
    assert refused.status_code == 503
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert refused.json()["fault"] == "outage"
    sink.put("/v1/faults", json={}, headers=ADMIN)
    assert deliver(sink, "a", "k1").json()["duplicate"] is False
    received = sink.get("/v1/received").json()
    assert (received["deliveries"], received["unique_keys"], received["duplicates"]) == (2, 1, 0)
    assert received["by_status"] == {"200": 1, "503": 1}


def test_metrics_count_deliveries_by_status_and_duplicates(sink: httpx.Client) -> None:
    """/metrics exposes the sink's own counters next to the request metrics."""
    deliver(sink, "a", "k1")
    deliver(sink, "a", "k1")
    text = sink.get("/metrics").text
    assert 'webhook_sink_deliveries_total{status="200"} 2.0' in text
    assert "webhook_sink_duplicates_total 1.0" in text


def test_the_ledger_survives_a_restart_and_resets_on_delete(
    lab_urls: ServerUrls, keys: KeyBuilder, sink: httpx.Client
) -> None:
    """A second sink on the same prefix sees the first one's deliveries, until DELETE."""
    deliver(sink, "a", "k1")
    with (
        serve_in_thread(create_app(sink_settings(keys), urls=lab_urls)) as base_url,
        httpx.Client(base_url=base_url) as restarted,
    ):
        assert restarted.get("/v1/received").json()["deliveries"] == 1
        assert deliver(restarted, "a", "k1").json()["duplicate"] is True
        assert restarted.delete("/v1/received", headers=ADMIN).status_code == 204
    assert sink.get("/v1/received").json() == {
        "deliveries": 0,
        "unique_keys": 0,
        "duplicates": 0,
        "by_hook": {},
        "by_status": {},
    }


def test_faults_are_read_back_as_set_and_fields_left_out_are_off(sink: httpx.Client) -> None:
    """PUT replaces the whole plan: a field it leaves out is switched off."""
    off = {"drop_response_rate": 0.0, "crash_points": {}, "seed": None}
    plan = {"latency_ms": 5, "error_rate": 0.25, "outage": False, "hang": False}
    assert sink.put("/v1/faults", json=plan, headers=ADMIN).json() == plan | off
    assert sink.get("/v1/faults").json() == plan | off
    sink.put("/v1/faults", json={"error_rate": 0.5}, headers=ADMIN)
    assert (
        sink.get("/v1/faults").json()
        == {
            "latency_ms": 0,
            "error_rate": 0.5,
            "outage": False,
            "hang": False,
        }
        | off
    )


@pytest.mark.parametrize(("method", "path"), [("PUT", "/v1/faults"), ("DELETE", "/v1/received")])
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}]
)
def test_admin_calls_without_the_token_are_401_problems(
    sink: httpx.Client, method: str, path: str, headers: dict[str, str]
) -> None:
    """Changing faults or resetting the ledger needs the admin bearer token; nothing changes."""
    deliver(sink, "a", "k1")
    answer = sink.request(method, path, json={"outage": True}, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert sink.get("/v1/faults").json()["outage"] is False
    assert sink.get("/v1/received").json()["deliveries"] == 1


@pytest.mark.parametrize(
    ("plan", "field"),
    [
        ({"error_rate": 1.5}, "error_rate"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"outage": "sometimes"}, "outage"),
        ({"blackhole": True}, "blackhole"),
    ],
)
def test_an_invalid_plan_is_a_422_problem_naming_the_field(
    sink: httpx.Client, plan: dict[str, object], field: str
) -> None:
    """An impossible fault plan is refused whole, and the plan in force stays."""
    answer = sink.put("/v1/faults", json=plan, headers=ADMIN)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.json()["errors"][0]["loc"] == ["body", field]
    assert sink.get("/v1/faults").json()["error_rate"] == 0


@pytest.mark.parametrize(
    ("path", "headers", "loc"),
    [
        ("/hooks/a", {}, ["header", "Idempotency-Key"]),
        ("/hooks/a", {"Idempotency-Key": ""}, ["header", "Idempotency-Key"]),
        ("/hooks/a%20b", {"Idempotency-Key": "k"}, ["path", "name"]),
    ],
)
def test_a_delivery_without_a_key_or_with_a_bad_hook_name_is_a_422_problem(
    sink: httpx.Client, path: str, headers: dict[str, str], loc: list[str]
) -> None:
    """The ledger only counts what it can dedupe, under hook names of bounded shape."""
    answer = sink.post(path, json={}, headers=headers)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.json()["errors"][0]["loc"] == loc
    assert sink.get("/v1/received").json()["deliveries"] == 0


def test_healthz_checks_redis(sink: httpx.Client) -> None:
    """The sink is healthy when its Redis answers."""
    answer = sink.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["checks"] == {"redis": "ok"}


async def test_latency_delays_the_answer_on_the_apps_clock(
    lab_urls: ServerUrls, keys: KeyBuilder, redis: Redis
) -> None:
    """In process on a manual clock: a delivery under 1.5 s of latency waits for 1.5 s to pass."""
    del redis  # requested so that the sink's keys are deleted afterwards
    clock = ManualClock()
    app = create_app(sink_settings(keys), urls=lab_urls, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://sink") as client,
    ):
        await client.put("/v1/faults", json={"latency_ms": 1_500}, headers=ADMIN)
        delivery = asyncio.create_task(
            client.post("/hooks/a", json={}, headers={"Idempotency-Key": "k"})
        )
        await until(lambda: clock.sleepers == 1, "the delivery's latency timer")
        clock.advance(1.499)
        await asyncio.sleep(0)
        assert clock.sleepers == 1
        assert not delivery.done()
        clock.advance(0.001)
        answer = await asyncio.wait_for(delivery, 10)
    assert answer.status_code == 200
