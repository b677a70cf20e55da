"""The circuit breaker's state machine, with the two half-open bugs as regression tests."""

import asyncio

import pytest

from labs.clock import ManualClock
from labs.failsim.policies import (
    BreakerSettings,
    BreakerState,
    CallRejectedError,
    CircuitBreaker,
    DependencyFailedError,
    Rejection,
)
from labs.testing.waiting import until

SETTINGS = BreakerSettings(
    window=10, min_calls=4, failure_ratio=0.5, open_s=1.0, probes=2, half_open_max_s=5.0
)


def _breaker(clock: ManualClock) -> tuple[CircuitBreaker, list[BreakerState]]:
    seen: list[BreakerState] = []
    return CircuitBreaker(clock, SETTINGS, on_transition=seen.append), seen


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """Read the state afresh (a property mypy would narrow across the awaits between reads)."""
    return breaker.state


async def _succeed(breaker: CircuitBreaker) -> None:
    async with breaker.permit():
        pass


async def _fail(breaker: CircuitBreaker) -> None:
    with pytest.raises(DependencyFailedError):
        async with breaker.permit():
            raise DependencyFailedError("503", retryable=True)


async def _open(breaker: CircuitBreaker) -> None:
    for _ in range(SETTINGS.min_calls):
        await _fail(breaker)
    assert state_of(breaker) is BreakerState.OPEN


async def test_it_opens_at_the_failure_ratio_once_min_calls_are_in() -> None:
    """Three failures of three stay closed (min_calls 4); the fourth call at 50 % opens it."""
    breaker, seen = _breaker(ManualClock())
    for _ in range(3):
        await _fail(breaker)
    assert state_of(breaker) is BreakerState.CLOSED
    await _succeed(breaker)
    assert state_of(breaker) is BreakerState.OPEN
    assert seen == [BreakerState.OPEN]


async def test_mostly_successful_calls_keep_it_closed() -> None:
    """One failure in four (25 % < 50 %) does not open it."""
    breaker, _ = _breaker(ManualClock())
    for _ in range(3):
        await _succeed(breaker)
    await _fail(breaker)
    assert state_of(breaker) is BreakerState.CLOSED


async def test_open_refuses_at_once_then_turns_half_open_after_open_s() -> None:
    """While open every call is refused without running; after open_s it is half-open."""
    clock = ManualClock()
    breaker, _ = _breaker(clock)
    await _open(breaker)
    ran = False
    with pytest.raises(CallRejectedError) as refused:
        async with breaker.permit():
            ran = True
    assert refused.value.reason is Rejection.BREAKER_OPEN
    assert not ran
    clock.advance(0.999)
    assert state_of(breaker) is BreakerState.OPEN
    clock.advance(0.001)
    assert state_of(breaker) is BreakerState.HALF_OPEN


async def test_probes_succeeding_close_it_and_a_failing_probe_reopens_it() -> None:
    """Two successful probes close it; after a reopen, one failed probe opens it again."""
    clock = ManualClock()
    breaker, seen = _breaker(clock)
    await _open(breaker)
    clock.advance(SETTINGS.open_s)
    await _succeed(breaker)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    await _succeed(breaker)
    assert state_of(breaker) is BreakerState.CLOSED
    await _open(breaker)
    clock.advance(SETTINGS.open_s)
    await _fail(breaker)
    assert state_of(breaker) is BreakerState.OPEN
    cycle = [BreakerState.OPEN, BreakerState.HALF_OPEN]
    assert seen == [*cycle, BreakerState.CLOSED, *cycle, BreakerState.OPEN]


async def test_regression_too_many_calls_let_through_on_half_open() -> None:
    """100 calls arriving the instant it turns half-open: exactly `probes` get through."""
    clock = ManualClock()
    breaker, _ = _breaker(clock)
    await _open(breaker)
    release = asyncio.Event()
    admitted = 0

    async def call() -> None:
        nonlocal admitted
        async with breaker.permit():
            admitted += 1
            await release.wait()

    clock.advance(SETTINGS.open_s)
    calls = [asyncio.create_task(call()) for _ in range(100)]
    await until(lambda: sum(task.done() for task in calls) == 100 - SETTINGS.probes, "refusals")
    assert admitted == SETTINGS.probes == breaker.probes_in_flight
    release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    refused = [r for r in results if isinstance(r, CallRejectedError)]
    assert len(refused) == 100 - SETTINGS.probes
    assert state_of(breaker) is BreakerState.CLOSED


async def test_regression_a_succeeded_probe_does_not_admit_an_extra_one() -> None:
    """With probes=2, one probe succeeding and one in flight: a third call is still refused."""
    clock = ManualClock()
    breaker, _ = _breaker(clock)
    await _open(breaker)
    clock.advance(SETTINGS.open_s)
    release = asyncio.Event()

    async def slow_probe() -> None:
        async with breaker.permit():
            await release.wait()

    slow = asyncio.create_task(slow_probe())
    await until(lambda: breaker.probes_in_flight == 1, "the slow probe")
    await _succeed(breaker)
    with pytest.raises(CallRejectedError):
        await _succeed(breaker)
    release.set()
    await slow
    assert state_of(breaker) is BreakerState.CLOSED


async def test_regression_stuck_half_open_a_cancelled_probe_frees_its_slot() -> None:
    """Probes cancelled by their callers give their slots back; new probes then close it."""
    clock = ManualClock()
    breaker, _ = _breaker(clock)
    await _open(breaker)
    clock.advance(SETTINGS.open_s)

    async def hung_probe() -> None:
        async with breaker.permit():
            await asyncio.Event().wait()

    hung = [asyncio.create_task(hung_probe()) for _ in range(SETTINGS.probes)]
    await until(lambda: breaker.probes_in_flight == SETTINGS.probes, "both probes")
    with pytest.raises(CallRejectedError):
        await _succeed(breaker)
    for task in hung:
        task.cancel()
    await asyncio.gather(*hung, return_exceptions=True)
    assert breaker.probes_in_flight == 0
    assert state_of(breaker) is BreakerState.HALF_OPEN
    await _succeed(breaker)
    await _succeed(breaker)
    assert state_of(breaker) is BreakerState.CLOSED


async def test_regression_stuck_half_open_probes_that_never_return_are_written_off() -> None:
    """Probes that never end: after half_open_max_s it reopens, then admits fresh probes."""
    clock = ManualClock()
    breaker, _ = _breaker(clock)
    await _open(breaker)
    clock.advance(SETTINGS.open_s)
    release = asyncio.Event()

    async def lost_probe() -> None:
        async with breaker.permit():
            await release.wait()

    lost = [asyncio.create_task(lost_probe()) for _ in range(SETTINGS.probes)]
    await until(lambda: breaker.probes_in_flight == SETTINGS.probes, "both probes")
    clock.advance(SETTINGS.half_open_max_s)
    assert state_of(breaker) is BreakerState.OPEN
    clock.advance(SETTINGS.open_s)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    await _succeed(breaker)
    release.set()  # the written-off probes come back late: their verdicts are ignored
    await asyncio.gather(*lost)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    await _succeed(breaker)
    assert state_of(breaker) is BreakerState.CLOSED


async def test_a_call_that_ends_in_another_error_is_no_verdict() -> None:
    """A local refusal raised inside the permit neither trips it nor counts as a success."""
    breaker, _ = _breaker(ManualClock())
    for _ in range(10):
        with pytest.raises(CallRejectedError):
            async with breaker.permit():
                raise CallRejectedError(Rejection.BULKHEAD_FULL, "full")
    await _fail(breaker)
    await _fail(breaker)
    await _fail(breaker)
    assert state_of(breaker) is BreakerState.CLOSED


def test_settings_that_could_never_open_are_refused() -> None:
    """min_calls above the window, or a zero ratio, is refused."""
    with pytest.raises(ValueError, match="min_calls"):
        BreakerSettings(window=5, min_calls=6)
    with pytest.raises(ValueError, match="failure_ratio"):
        BreakerSettings(failure_ratio=0)
