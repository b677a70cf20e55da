"""The rest of the payments API over real servers: refunds, reads, strategies, faults, fuzzing."""

import asyncio

from pydantic import SecretStr
from redis.asyncio import Redis

from idempotency.app import create_app
from idempotency.provider.admin import ProviderAdmin
from idempotency.settings import IdempotencySettings
from idempotency.testing import ApiFactory
from labs.settings import ServerUrls
from labs.testing.fuzz import fuzz_app
from labs.web.problems import PROBLEM_JSON

BODY = {"amount": 1_250, "currency": "EUR", "customer": "cus_42"}
ALICE = {"X-Api-Key": "sk_test_alice"}
BOB = {"X-Api-Key": "sk_test_bob"}
ADMIN = {"Authorization": "Bearer api-test-token"}


async def test_refunds_never_exceed_the_capture_even_when_concurrent(
    payments_api: ApiFactory, provider: ProviderAdmin
) -> None:
    """Ten concurrent refunds of 30 against 100 captured: three pass, seven get 422."""
    async with payments_api() as api:
        payment = (
            await api.pay("db-unique", {"amount": 100, "currency": "EUR", "customer": "c"}, "r")
        ).json()
        refunds = f"/v1/payments/{payment['id']}/refunds"
        answers = await asyncio.gather(
            *(api.http.post(refunds, json={"amount": 30}) for _ in range(10))
        )
        last = await api.http.post(refunds, json={"amount": 10})
        over = await api.http.post(refunds, json={"amount": 1})
        bobs = await api.http.post(refunds, json={"amount": 1}, headers=BOB)
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] * 3 + [422] * 7
    assert all(a.headers["content-type"] == PROBLEM_JSON for a in answers if a.status_code == 422)
    assert (last.status_code, over.status_code, bobs.status_code) == (201, 422, 404)
    assert [charge["amount"] for charge in await provider.charges()] == [100]


async def test_a_payment_that_captured_nothing_cannot_be_refunded(
    payments_api: ApiFactory,
) -> None:
    """A declined payment, or a pending one, cannot be refunded."""
    body = {"amount": 100, "currency": "EUR", "customer": "declined_x"}
    async with payments_api() as api:
        declined = (await api.pay("none", body)).json()
        pending = (await api.pay("outbox", body | {"customer": "c"}, "p")).json()
        answers = [
            await api.http.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 1})
            for payment in (declined, pending)
        ]
    assert [answer.status_code for answer in answers] == [422, 422]


async def test_payments_are_read_by_their_owner_only_and_callers_must_be_known(
    payments_api: ApiFactory,
) -> None:
    """Payments are read by their owner only, and callers must be known."""
    async with payments_api() as api:
        payment = (await api.pay("none", BODY)).json()
        mine = await api.http.get(f"/v1/payments/{payment['id']}")
        bobs = await api.http.get(f"/v1/payments/{payment['id']}", headers=BOB)
        stranger = await api.pay("none", BODY, None, headers={"X-Api-Key": "sk_nobody"})
    assert (mine.status_code, mine.json()) == (200, payment)
    assert (bobs.status_code, bobs.headers["content-type"]) == (404, PROBLEM_JSON)
    assert (stranger.status_code, stranger.headers["content-type"]) == (401, PROBLEM_JSON)


async def test_the_strategies_and_their_key_expiry_are_advertised(
    payments_api: ApiFactory,
) -> None:
    """The strategies and their key expiry are advertised."""
    async with payments_api(key_ttl_s=3_600) as api:
        listed = (await api.http.get("/v1/strategies")).json()["strategies"]
    assert [(s["name"], s["takes_key"], s["key_ttl_s"]) for s in listed] == [
        ("none", False, None),
        ("db-unique", True, 3_600),
        ("redis-lock", True, 3_600),
        ("recovery-points", True, 3_600),
        ("outbox", True, 3_600),
        ("natural-key", False, None),
    ]


async def test_the_api_refuses_injected_faults_on_payments_only(
    payments_api: ApiFactory,
) -> None:
    """An outage refuses payments with 503 but leaves the strategies and the faults readable."""
    async with payments_api() as api:
        plan = await api.http.put("/v1/faults", json={"outage": True}, headers=ADMIN)
        refused = await api.pay("none", BODY)
        listed = await api.http.get("/v1/strategies")
        bad = await api.http.put("/v1/faults", json={"crash_points": {"nowhere": 1}}, headers=ADMIN)
    assert plan.status_code == 200
    assert (refused.status_code, refused.headers["content-type"]) == (503, PROBLEM_JSON)
    assert listed.status_code == 200
    assert bad.status_code == 422


def test_the_api_never_answers_5xx_to_fuzzed_requests(
    lab_urls: ServerUrls, api_settings: IdempotencySettings, redis: Redis
) -> None:
    """Every operation, fed valid and invalid input, stays below 500.

    As Alice, without the admin token: no fuzzed plan can inject the 503s the faults
    send on purpose; the admin route is fuzzed as far as its 401. Ten examples per
    operation keep it within the suite's budget.
    """
    del redis  # requested so that the fuzzed payments' Redis keys are deleted afterwards
    settings = api_settings.model_copy(update={"admin_token": SecretStr("never-sent")})
    report = fuzz_app(create_app(settings, lab_urls), headers=ALICE, max_examples=10)
    assert {
        "POST /v1/{strategy}/payments",
        "GET /v1/payments/{payment_id}",
        "POST /v1/payments/{payment_id}/refunds",
        "GET /v1/strategies",
    } <= report.operations
