"""The real chain: deadlines propagated hop by hop, and duplicates under commit-then-drop faults."""

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from labs.clock import SystemClock
from labs.failsim.chain.processes import ChainUrls, running_chain
from labs.failsim.config import EdgePolicy, RetryConfig
from labs.failsim.experiments.driver import ChainDriver, driving
from labs.failsim.policies import Deadline
from labs.faults import Faults
from labs.settings import ServerUrls

pytestmark = pytest.mark.asyncio(loop_scope="module")
CHAIN = ["gateway", "orders", "payments"]
RETRY_3 = RetryConfig(attempts=3, base_ms=1, cap_ms=5)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chain(lab_urls: ServerUrls) -> AsyncIterator[ChainUrls]:
    """gateway, orders, payments and catalog as processes, stopped after the module."""
    async with running_chain(lab_urls, uuid.uuid4().hex) as urls:
        yield urls


@pytest_asyncio.fixture(loop_scope="module")
async def driver(chain: ChainUrls) -> AsyncIterator[ChainDriver]:
    """A driver of the module's chain."""
    async with driving(chain) as each:
        yield each


async def test_each_hop_receives_what_is_left_of_the_deadline(driver: ChainDriver) -> None:
    """With 80 ms of latency per hop, each hop sees the caller's deadline less the time spent."""
    await driver.prepare({hop: Faults(latency_ms=80) for hop in CHAIN}, {})
    client = driver.client("gateway", EdgePolicy())
    answer = await client.call("r-1", CHAIN[1:], Deadline.after(SystemClock(), 2.0))
    received = [visit["deadline_ms"] for visit in answer["hops"]]
    assert [visit["name"] for visit in answer["hops"]] == CHAIN
    assert 2_000 > received[0] > received[1] + 75 > received[2] + 150
    assert received[2] > 0


async def test_a_deadline_spent_below_ends_the_request_and_its_retries(
    driver: ChainDriver,
) -> None:
    """A 300 ms budget through hops of 150 ms each: 504 at orders, no work at payments, no retry."""
    await driver.prepare(
        {hop: Faults(latency_ms=150) for hop in CHAIN},
        {
            "gateway->orders": EdgePolicy(retry=RETRY_3),
            "orders->payments": EdgePolicy(retry=RETRY_3),
        },
    )
    sample = await driver.send(driver.client("gateway", EdgePolicy()), CHAIN, 0.3)
    stats = await driver.stats()
    assert not sample.ok
    assert sample.latency_ms < 1_000
    assert stats["payments"].received == 0
    assert stats["payments"].side_effects == 0


@pytest.mark.parametrize(("keys", "expect_duplicates"), [(False, True), (True, False)])
async def test_commit_then_drop_duplicates_only_without_idempotency_keys(
    driver: ChainDriver,
    keys: bool,  # noqa: FBT001
    expect_duplicates: bool,  # noqa: FBT001
) -> None:
    """Payments loses 30 % of its answers after committing: retries duplicate unless keyed."""
    await driver.prepare(
        {"payments": Faults(drop_response_rate=0.3, seed=5)},
        {"orders->payments": EdgePolicy(retry=RETRY_3, idempotency_keys=keys)},
    )
    samples = await driver.closed(driver.client("gateway", EdgePolicy()), CHAIN, 5.0, 60, 4)
    payments = (await driver.stats())["payments"]
    duplicates = payments.side_effects - payments.distinct_requests
    assert payments.distinct_requests == 60
    assert sum(sample.ok for sample in samples) >= 55
    if expect_duplicates:
        assert duplicates >= 8  # about 0.3 + 0.09 per request: 23 expected
    else:
        assert duplicates == 0
        assert payments.received > 60  # the retries did arrive, and were answered from the ledger
