"""The IETF Idempotency-Key semantics, for every strategy that takes a key, over real servers.

Missing key 400; replay of the original status and body with `Idempotent-Replayed`;
another payload 422; a request in flight 409 with `Retry-After`; keys scoped to the
principal and the route; a provider failure 502 that leaves the key free for a retry;
32 concurrent duplicates charge once.
"""

import asyncio

import pytest

from idempotency.provider.admin import ProviderAdmin
from idempotency.testing import ApiFactory
from labs.testing.waiting import until_awaited
from labs.web.problems import PROBLEM_JSON

KEYED = ["db-unique", "redis-lock", "recovery-points", "outbox"]
SYNCHRONOUS = ["db-unique", "redis-lock", "recovery-points"]
BODY = {"amount": 1_250, "currency": "EUR", "customer": "cus_42", "description": "order 1"}
BOB = {"X-Api-Key": "sk_test_bob"}
NO_COMPLETER = {"completer_interval_s": 3_600}
"""The completer would race these tests for a key a failed request gave back."""


async def provider_holds(provider: ProviderAdmin, requests: int) -> bool:
    """Whether a hang at the provider holds `requests` requests now."""
    return await provider.held() == requests


def created(strategy: str) -> int:
    """Return the status a new payment gets under `strategy`."""
    return 202 if strategy == "outbox" else 201


@pytest.mark.parametrize("strategy", KEYED)
async def test_a_keyed_strategy_replays_refuses_and_scopes_its_keys(
    payments_api: ApiFactory, provider: ProviderAdmin, strategy: str
) -> None:
    """Missing key 400, replay byte for byte, another payload 422, scope per principal and route."""
    async with payments_api(**NO_COMPLETER) as api:
        missing = await api.pay(strategy, BODY)
        first = await api.pay(strategy, BODY, "order-1")
        again = await api.pay(strategy, BODY, '"order-1"')
        changed = await api.pay(strategy, BODY | {"amount": 1_251}, "order-1")
        bobs = await api.pay(strategy, BODY, "order-1", headers=BOB)
        other_route = KEYED[(KEYED.index(strategy) + 1) % len(KEYED)]
        elsewhere = await api.pay(other_route, BODY, "order-1")
        assert await api.payments_recorded() == 3
    assert (missing.status_code, missing.headers["content-type"]) == (400, PROBLEM_JSON)
    assert first.status_code == created(strategy)
    assert "idempotent-replayed" not in first.headers
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers.get("location") == first.headers.get("location")
    assert (changed.status_code, changed.headers["content-type"]) == (422, PROBLEM_JSON)
    assert bobs.status_code == created(strategy)
    assert elsewhere.status_code == created(other_route)
    assert len({first.json()["id"], bobs.json()["id"], elsewhere.json()["id"]}) == 3
    if strategy in SYNCHRONOUS:
        charged = [c for c in await provider.charges() if c["reference"] == first.json()["id"]]
        assert len(charged) == 1


@pytest.mark.parametrize("strategy", SYNCHRONOUS)
async def test_a_duplicate_in_flight_gets_409_and_a_provider_failure_frees_the_key(
    payments_api: ApiFactory, provider: ProviderAdmin, strategy: str
) -> None:
    """A duplicate in flight gets 409 and a provider failure frees the key."""
    async with payments_api(**NO_COMPLETER) as api:
        await provider.set_faults(hang=True)
        racing = {asyncio.create_task(api.pay(strategy, BODY, "k")) for _ in range(2)}
        done, held = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED, timeout=30)
        refused = done.pop().result()
        await until_awaited(lambda: provider_holds(provider, 1), "the charge to reach the provider")
        await provider.set_faults()
        failed = await held.pop()
        retried = await api.pay(strategy, BODY, "k")
    assert refused.status_code == 409
    assert int(refused.headers["retry-after"]) >= 1
    assert (failed.status_code, failed.headers["content-type"]) == (502, PROBLEM_JSON)
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert len(await provider.charges()) == 1


@pytest.mark.parametrize("strategy", KEYED)
async def test_32_concurrent_duplicates_make_one_payment(
    payments_api: ApiFactory, provider: ProviderAdmin, strategy: str
) -> None:
    """32 concurrent duplicates of one key make one payment; the rest get 409 or its replay."""
    async with payments_api(**NO_COMPLETER) as api:
        await provider.set_faults(latency_ms=100)
        answers = await asyncio.gather(*(api.pay(strategy, BODY, "same") for _ in range(32)))
        assert await api.payments_recorded() == 1
    fresh = [a for a in answers if a.is_success and "idempotent-replayed" not in a.headers]
    replays = [a for a in answers if "idempotent-replayed" in a.headers]
    conflicts = [a for a in answers if a.status_code == 409]
    assert len(fresh) == 1
    assert len(replays) + len(conflicts) == 31
    assert all(replay.content == fresh[0].content for replay in replays)
    expected_charges = 0 if strategy == "outbox" else 1
    assert len(await provider.charges()) == expected_charges
