"""Retries within attempts, deadline and budget; the deadline header; the stack's order."""

import asyncio
import random

import pytest

from labs.clock import ManualClock
from labs.failsim.policies import (
    AttemptTimedOutError,
    Backoff,
    BreakerSettings,
    BudgetSettings,
    CallRejectedError,
    CircuitBreaker,
    Deadline,
    DependencyFailedError,
    Jitter,
    Policies,
    Rejection,
    Retry,
    RetryBudget,
    within,
)
from labs.testing.waiting import until

NO_JITTER = Backoff(Jitter.NONE, 0.1, 1.0)


class Flaky:
    """A dependency that fails its first `failures` calls."""

    def __init__(self, failures: int, *, retryable: bool = True) -> None:
        """Fail `failures` times, marked `retryable`, then succeed."""
        self.failures = failures
        self.retryable = retryable
        self.calls = 0

    async def __call__(self) -> str:
        """Count the call; fail or answer "ok"."""
        self.calls += 1
        if self.calls <= self.failures:
            raise DependencyFailedError("503", retryable=self.retryable)
        return "ok"


async def _run_advancing(clock: ManualClock, call: asyncio.Task[str]) -> str:
    """Let `call` run, moving the clock past each sleep it starts."""
    while not call.done():
        await asyncio.sleep(0)
        if clock.sleepers:
            clock.advance(clock.deadlines[0] - clock.monotonic())
    return call.result()


async def test_retries_until_success_sleeping_the_backoff() -> None:
    """Two failures then success: three calls, after sleeps of 0.2 and 0.4 s."""
    clock = ManualClock()
    flaky = Flaky(2)
    retry = Retry(3, NO_JITTER)
    started = clock.monotonic()
    task = asyncio.create_task(retry.run(flaky, Deadline.after(clock, 10), clock, random.Random()))
    assert await _run_advancing(clock, task) == "ok"
    assert flaky.calls == 3
    assert clock.monotonic() - started == pytest.approx(0.6)


async def test_gives_up_after_the_attempts_naming_the_last_failure() -> None:
    """Always failing, 3 attempts: 3 calls, then ATTEMPTS chained to the last failure."""
    clock = ManualClock()
    flaky = Flaky(99)
    task = asyncio.create_task(
        Retry(3, NO_JITTER).run(flaky, Deadline.after(clock, 10), clock, random.Random())
    )
    with pytest.raises(CallRejectedError) as refused:
        await _run_advancing(clock, task)
    assert refused.value.reason is Rejection.ATTEMPTS
    assert isinstance(refused.value.__cause__, DependencyFailedError)
    assert flaky.calls == 3


async def test_a_failure_marked_not_retryable_is_not_retried() -> None:
    """A failure with retryable=False goes straight up, after one call."""
    clock = ManualClock()
    flaky = Flaky(1, retryable=False)
    with pytest.raises(DependencyFailedError):
        await Retry(3, NO_JITTER).run(flaky, Deadline.after(clock, 10), clock, random.Random())
    assert flaky.calls == 1


async def test_regression_a_retry_never_sleeps_past_the_deadline() -> None:
    """With 0.25 s left, the 0.2 s backoff is slept, the 0.4 s one is not: DEADLINE."""
    clock = ManualClock()
    flaky = Flaky(99)
    deadline = Deadline.after(clock, 0.25)
    task = asyncio.create_task(Retry(10, NO_JITTER).run(flaky, deadline, clock, random.Random()))
    with pytest.raises(CallRejectedError) as refused:
        await _run_advancing(clock, task)
    assert refused.value.reason is Rejection.DEADLINE
    assert flaky.calls == 2
    assert clock.monotonic() <= deadline.at


async def test_the_budget_caps_retries_across_calls() -> None:
    """20 always-failing calls with 3 attempts and a 10 % budget: 22 calls, not 60."""
    clock = ManualClock()
    budget = RetryBudget(clock, BudgetSettings(ratio=0.1))
    retry = Retry(3, Backoff(Jitter.NONE, 0.001, 0.001), budget)
    flaky = Flaky(10_000)
    reasons = []
    for _ in range(20):
        task = asyncio.create_task(
            retry.run(flaky, Deadline.after(clock, 10), clock, random.Random())
        )
        with pytest.raises(CallRejectedError) as refused:
            await _run_advancing(clock, task)
        reasons.append(refused.value.reason)
    assert flaky.calls == 22
    assert set(reasons) == {Rejection.BUDGET}  # each call ended when the budget said no


def test_the_deadline_header_carries_what_remains() -> None:
    """A hop reading 800 ms sends on what is left of it; a bad or missing value uses the default."""
    clock = ManualClock()
    deadline = Deadline.from_header(clock, "800", default_s=5)
    clock.advance(0.3)
    assert deadline.header_value() == "500"
    assert deadline.cap(1.0) == pytest.approx(0.5)
    assert deadline.cap(0.1) == pytest.approx(0.1)
    assert Deadline.from_header(clock, "soon", default_s=5).remaining() == 5
    assert Deadline.from_header(clock, None, default_s=2).remaining() == 2
    clock.advance(0.5)
    assert deadline.expired
    with pytest.raises(CallRejectedError):
        deadline.check()


async def test_within_cancels_a_hung_attempt_when_the_clock_says() -> None:
    """The attempt is cancelled (its cleanup ran) before the timeout is raised."""
    clock = ManualClock()
    cleaned = False

    async def hang() -> str:
        nonlocal cleaned
        try:
            await asyncio.Event().wait()
        finally:
            cleaned = True
        return "never"

    task = asyncio.create_task(within(clock, 0.5, hang))
    await until(lambda: clock.sleepers == 1, "the timer")
    clock.advance(0.5)
    with pytest.raises(AttemptTimedOutError):
        await task
    assert cleaned


async def test_the_stack_stops_retrying_when_the_breaker_opens() -> None:
    """Retry outside the breaker: once it opens, the remaining attempts are not spent."""
    clock = ManualClock()
    breaker = CircuitBreaker(clock, BreakerSettings(window=2, min_calls=2, failure_ratio=1))
    policies = Policies(
        clock,
        random.Random(),
        retry=Retry(5, Backoff(Jitter.NONE, 0.001, 0.001)),
        breaker=breaker,
        attempt_timeout_s=1,
    )
    flaky = Flaky(99)
    task = asyncio.create_task(policies.call(flaky, Deadline.after(clock, 10)))
    with pytest.raises(CallRejectedError) as refused:
        await _run_advancing(clock, task)
    assert refused.value.reason is Rejection.BREAKER_OPEN
    assert flaky.calls == 2


async def test_the_stack_times_out_each_attempt_and_retries() -> None:
    """A hung first attempt is cut at its timeout; the retry succeeds."""
    clock = ManualClock()
    calls = 0

    async def hangs_once() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.Event().wait()
        return "ok"

    policies = Policies(clock, random.Random(), retry=Retry(2, NO_JITTER), attempt_timeout_s=0.5)
    task = asyncio.create_task(policies.call(hangs_once, Deadline.after(clock, 10)))
    assert await _run_advancing(clock, task) == "ok"
    assert calls == 2
