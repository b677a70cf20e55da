"""The retry budget's ratio, floor and window, and the bulkhead's limit, wait and release."""

import asyncio

import pytest

from labs.clock import ManualClock
from labs.failsim.policies import (
    BudgetSettings,
    Bulkhead,
    BulkheadSettings,
    CallRejectedError,
    Rejection,
    RetryBudget,
)
from labs.testing.waiting import until


def test_the_budget_allows_retries_up_to_the_ratio_of_requests() -> None:
    """100 requests at 10 % allow 10 retries, not 11."""
    budget = RetryBudget(ManualClock(), BudgetSettings(ratio=0.1))
    for _ in range(100):
        budget.record_request()
    assert [budget.try_spend() for _ in range(11)] == [True] * 10 + [False]


def test_the_floor_allows_a_quiet_client_some_retries() -> None:
    """With no requests, 0.5 retries/s over 10 s allows 5."""
    budget = RetryBudget(ManualClock(), BudgetSettings(ratio=0.1, min_per_s=0.5, window_s=10))
    assert sum(budget.try_spend() for _ in range(10)) == 5


def test_requests_and_retries_leave_the_window() -> None:
    """Once the window has passed, old retries no longer count, and neither do old requests."""
    clock = ManualClock()
    budget = RetryBudget(clock, BudgetSettings(ratio=0.5, window_s=10))
    for _ in range(4):
        budget.record_request()
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]
    clock.advance(10)
    assert not budget.try_spend()  # the requests left with the retries
    for _ in range(2):
        budget.record_request()
    assert budget.try_spend()


async def test_the_bulkhead_refuses_at_once_past_its_limit() -> None:
    """Two slots taken and no waiting room: the third call is refused without waiting."""
    bulkhead = Bulkhead(ManualClock(), BulkheadSettings(max_concurrent=2))
    held = asyncio.Event()

    async def hold() -> None:
        async with bulkhead.slot(10):
            await held.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    await until(lambda: bulkhead.in_use == 2, "both slots taken")
    with pytest.raises(CallRejectedError) as refused:
        async with bulkhead.slot(10):
            pass
    assert refused.value.reason is Rejection.BULKHEAD_FULL
    held.set()
    await asyncio.gather(*holders)
    assert bulkhead.in_use == 0


async def test_a_waiter_gets_a_freed_slot_and_one_past_its_wait_is_refused() -> None:
    """One may wait up to 1 s: it gets a slot freed in time; the next waiter times out."""
    clock = ManualClock()
    bulkhead = Bulkhead(clock, BulkheadSettings(max_concurrent=1, max_waiting=1, max_wait_s=1))
    free = asyncio.Event()

    async def hold() -> None:
        async with bulkhead.slot(10):
            await free.wait()

    async def wait_for_slot() -> str:
        async with bulkhead.slot(10):
            return "got it"

    holder = asyncio.create_task(hold())
    await until(lambda: bulkhead.in_use == 1, "the slot taken")
    waiter = asyncio.create_task(wait_for_slot())
    await until(lambda: bulkhead.waiting == 1, "a waiter")
    with pytest.raises(CallRejectedError):  # the waiting room is full
        async with bulkhead.slot(10):
            pass
    free.set()
    assert await waiter == "got it"
    await holder
    free.clear()
    holder = asyncio.create_task(hold())
    await until(lambda: bulkhead.in_use == 1, "the slot taken again")
    late = asyncio.create_task(wait_for_slot())
    await until(lambda: bulkhead.waiting == 1, "a second waiter")
    clock.advance(1)
    with pytest.raises(CallRejectedError):
        await late
    free.set()
    await holder


async def test_a_cancelled_call_gives_its_slot_back() -> None:
    """A call cancelled while holding the only slot frees it."""
    bulkhead = Bulkhead(ManualClock(), BulkheadSettings(max_concurrent=1))

    async def hang() -> None:
        async with bulkhead.slot(10):
            await asyncio.Event().wait()

    hung = asyncio.create_task(hang())
    await until(lambda: bulkhead.in_use == 1, "the slot taken")
    hung.cancel()
    await asyncio.gather(hung, return_exceptions=True)
    async with bulkhead.slot(0):
        assert bulkhead.in_use == 1
