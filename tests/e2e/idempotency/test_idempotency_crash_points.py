"""Each crash point with a real SIGKILL of the API process, then a restart and the retry.

One API process per case (strategy, crash point), armed at start to SIGKILL itself
when a request reaches that point; all start together, then each gets one payment and
dies mid-request (the client sees a broken connection). A fresh API process — the
restart — takes the retries with the same keys, on the same servers. The provider's
ledger then says what each crash cost, and each strategy's documented outcome is
asserted, the failures included:

| strategy | before_charge | after_charge | after_commit |
| --- | --- | --- | --- |
| recovery-points | **1 charge** | **1** (the provider replays the derived key) | **1** (replay) |
| db-unique | 1 | **2** (the rollback forgot the charge) | 1 (replay) |
| redis-lock | 1 (after the lock's TTL) | **2** (idem) | 1 (replay) |
| natural-key | 1 | 2 (as db-unique) | 1 (merged) |

Every process costs seconds to start on the suite's 2-core machine, so the test runs
the five cases in bold: each crash point once, and each documented duplicate of a
strategy of its own. The others take paths the integration tests cover (a rollback
before the charge, a replay after the commit); the idempotency experiment runs the
whole matrix.
"""

import asyncio
import json
import signal
from typing import Any

import httpx
import pytest

from idempotency.provider.admin import ProviderAdmin
from labs.testing.processes import Children

EXPECTED_CHARGES = {
    ("recovery-points", "before_charge"): 1,
    ("recovery-points", "after_charge"): 1,
    ("recovery-points", "after_commit"): 1,
    ("db-unique", "after_charge"): 2,
    ("redis-lock", "after_charge"): 2,
}
FAST_LOCKS = {
    "IDEMPOTENCY_LOCK_TTL_MS": "500",
    "IDEMPOTENCY_RECOVERY_LOCK_TIMEOUT_S": "1",
    "IDEMPOTENCY_COMPLETER_INTERVAL_S": "3600",
    "IDEMPOTENCY_PROVIDER_TIMEOUT_S": "60",
}
"""A dead request's lock frees its key within a second; the completers stay out of it; a
provider slowed by a busy machine is waited for rather than taken for a failure."""


def order(case: tuple[str, str]) -> dict[str, Any]:
    """Return the payment a case's client sends: its description names the case."""
    return {
        "amount": 4_200,
        "currency": "EUR",
        "customer": f"cus_{case[1]}",
        "description": "/".join(case),
    }


async def post(url: str, case: tuple[str, str]) -> httpx.Response:
    """POST the case's payment to the API at `url`, with the case's idempotency key."""
    headers = {"X-Api-Key": "sk_test_alice", "Idempotency-Key": "/".join(case)}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await client.post(f"/v1/{case[0]}/payments", json=order(case), headers=headers)


async def retry_until_answered(url: str, case: tuple[str, str]) -> httpx.Response:
    """Retry the case's payment while the dead request's lock still holds its key (409)."""
    while (answer := await post(url, case)).status_code == 409:
        pass
    return answer


@pytest.mark.slow
async def test_every_crash_point_costs_what_its_strategy_documents(
    children: Children, idempotency_env: dict[str, str], provider: ProviderAdmin
) -> None:
    """SIGKILL at each crash point, restart, retry: the ledger matches the documented outcomes."""
    env = idempotency_env | FAST_LOCKS
    armed = {
        case: children.serve(
            "idempotency", env | {"IDEMPOTENCY_FAULTS": json.dumps({"crash_points": {case[1]: 1}})}
        )
        for case in EXPECTED_CHARGES
    }
    await children.healthy(*armed.values())
    crashes = await asyncio.gather(
        *(post(api.url, case) for case, api in armed.items()), return_exceptions=True
    )
    assert all(isinstance(crash, httpx.TransportError) for crash in crashes), crashes
    assert {api.process.wait(10) for api in armed.values()} == {-signal.SIGKILL}
    restarted = children.serve("idempotency", env)
    await children.healthy(restarted)
    retries = await asyncio.gather(*(retry_until_answered(restarted.url, c) for c in armed))
    charges = await provider.charges()
    assert {answer.status_code for answer in retries} <= {200, 201}
    charged = dict.fromkeys(EXPECTED_CHARGES, 0)
    for charge in charges:
        strategy, point = charge["description"].split("/")
        charged[strategy, point] += 1
    assert charged == EXPECTED_CHARGES
    recovered = [a.json() for c, a in zip(armed, retries, strict=True) if c[0] == "recovery-points"]
    references = {c["reference"] for c in charges if c["description"].startswith("recovery-")}
    assert references == {payment["id"] for payment in recovered}  # none charged unrecorded
    assert {payment["status"] for payment in recovered} == {"succeeded"}
