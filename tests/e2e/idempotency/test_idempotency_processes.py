"""The outbox path through Tansu with charger processes, and `lab serve idempotency`'s children.

A charger killed right after the provider charged (a real SIGKILL at `after_charge`)
leaves the payment pending; the next charger redelivers the event and charges again
with the same downstream key, which the provider answers with the first charge: one
charge. `lab serve idempotency` starts its provider and a charger, carries an outbox
payment to `succeeded`, and leaves no child behind when stopped.
"""

import json
import signal
from typing import Any

import httpx
import psutil
import pytest

from idempotency.provider.admin import ProviderAdmin
from idempotency.testing import ApiFactory
from labs.testing.processes import Children
from labs.testing.waiting import until, until_awaited

BODY = {"amount": 990, "currency": "EUR", "customer": "cus_outbox"}
ALICE = {"X-Api-Key": "sk_test_alice", "Idempotency-Key": "outbox-1"}


async def status_of(http: httpx.AsyncClient, payment: dict[str, Any]) -> str:
    """Return the payment's status as the API reads it now."""
    answer = await http.get(f"/v1/payments/{payment['id']}", headers=ALICE)
    status: str = answer.raise_for_status().json()["status"]
    return status


async def is_settled(http: httpx.AsyncClient, payment: dict[str, Any]) -> bool:
    """Whether the payment has left `pending`."""
    return await status_of(http, payment) != "pending"


@pytest.mark.slow
async def test_a_charger_killed_after_the_charge_is_replaced_without_a_second_charge(
    payments_api: ApiFactory,
    provider: ProviderAdmin,
    children: Children,
    idempotency_env: dict[str, str],
) -> None:
    """SIGKILL after the charge, a new charger: the payment succeeds, charged once."""
    crash = {"IDEMPOTENCY_FAULTS": json.dumps({"crash_points": {"after_charge": 1}})}
    doomed = children.start("idempotency.charger", env=idempotency_env | crash)
    async with payments_api() as api:
        accepted = await api.pay("outbox", BODY, "outbox-1")
        assert accepted.status_code == 202
        payment = accepted.json()
        await until(lambda: doomed.process.poll() is not None, "the crash", timeout_s=60)
        assert doomed.process.returncode == -signal.SIGKILL, doomed.log()
        assert [c["reference"] for c in await provider.charges()] == [payment["id"]]
        assert await status_of(api.http, payment) == "pending"
        children.start("idempotency.charger", env=idempotency_env)
        await until_awaited(
            lambda: is_settled(api.http, payment), "the second charger to settle it", timeout_s=60
        )
    charges = await provider.charges()
    assert [(c["reference"], c["idempotency_key"]) for c in charges] == [(payment["id"],) * 2]


@pytest.mark.slow
async def test_lab_serve_idempotency_runs_its_provider_and_charger_and_stops_them(
    children: Children, idempotency_env: dict[str, str], spare_schema: str
) -> None:
    """The children charge an outbox payment end to end, then go with their parent."""
    env = {
        key: value for key, value in idempotency_env.items() if key != "IDEMPOTENCY_PROVIDER_URL"
    }
    env |= {"IDEMPOTENCY_CHARGERS": "1", "PAYMENT_PROVIDER_DB_SCHEMA": spare_schema}
    served = children.serve("idempotency", env)
    await children.healthy(served)
    kids = psutil.Process(served.process.pid).children()
    commands = sorted(" ".join(kid.cmdline()[1:4]) for kid in kids)
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        payment = (await http.post("/v1/outbox/payments", json=BODY, headers=ALICE)).json()
        await until_awaited(lambda: is_settled(http, payment), "the child charger", timeout_s=60)
        health = (await http.get("/healthz")).json()
        assert await status_of(http, payment) == "succeeded"
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(30) in {0, -signal.SIGTERM}, served.log()
    assert commands == ["-m idempotency.charger", "-m labs serve"]
    assert health["checks"]["provider"] == "ok"
    assert not [kid.pid for kid in kids if kid.is_running() and kid.status() != "zombie"]
