"""The lab's fault injector: outage, seeded error rate, latency, hang, dropped answers, crashes."""

import asyncio
import random

import pytest
from pydantic import ValidationError

from labs.clock import ManualClock
from labs.faults import Fault, FaultInjector, Faults, UnknownCrashPointError
from labs.testing.waiting import until

SEED = 7


async def test_no_faults_passes_every_delivery_at_once() -> None:
    """The empty plan is a healthy receiver: nothing waits on the clock, nothing is refused."""
    clock = ManualClock()
    injector = FaultInjector(clock, SEED)
    assert [await injector.apply() for _ in range(100)] == [None] * 100
    assert clock.sleepers == 0


async def test_an_outage_refuses_everything() -> None:
    """During an outage every delivery is refused; lifting it lets them through again."""
    injector = FaultInjector(ManualClock(), SEED)
    injector.change(Faults(outage=True))
    assert {await injector.apply() for _ in range(50)} == {Fault.OUTAGE}
    injector.change(Faults())
    assert await injector.apply() is None


async def test_the_error_rate_refuses_what_the_seed_says_and_repeats_after_a_change() -> None:
    """The refusals follow `random.Random(seed)`, and each change of plan restarts the draws."""
    injector = FaultInjector(ManualClock(), SEED)
    draws = random.Random(SEED)
    expected = [Fault.ERROR_RATE if draws.random() < 0.3 else None for _ in range(200)]
    injector.change(Faults(error_rate=0.3))
    first = [await injector.apply() for _ in range(200)]
    injector.change(Faults(error_rate=0.3))
    second = [await injector.apply() for _ in range(200)]
    assert first == expected
    assert second == expected
    assert 40 < expected.count(Fault.ERROR_RATE) < 80


async def test_latency_delays_each_answer_on_the_clock() -> None:
    """A delivery under 2 s of latency is answered when the clock has moved 2 s, not before."""
    clock = ManualClock()
    injector = FaultInjector(clock, SEED)
    injector.change(Faults(latency_ms=2_000))
    delivery = asyncio.create_task(injector.apply())
    await until(lambda: clock.sleepers == 1, "the latency timer")
    clock.advance(1.999)
    await asyncio.sleep(0)
    assert not delivery.done()
    clock.advance(0.001)
    assert await asyncio.wait_for(delivery, 5) is None


async def test_a_hang_holds_deliveries_whatever_the_time_until_it_is_lifted() -> None:
    """Held deliveries outlive any timeout; lifting the hang refuses them all at once."""
    clock = ManualClock()
    injector = FaultInjector(clock, SEED)
    injector.change(Faults(hang=True, latency_ms=1))
    held = [asyncio.create_task(injector.apply()) for _ in range(3)]
    await until(lambda: injector.held == 3, "three held deliveries")
    clock.advance(3_600)
    await asyncio.sleep(0)
    assert not any(task.done() for task in held)
    assert clock.sleepers == 0  # held before the latency, not sleeping on the clock
    injector.change(Faults())
    assert await asyncio.wait_for(asyncio.gather(*held), 5) == [Fault.HANG] * 3
    assert injector.held == 0
    assert await injector.apply() is None


@pytest.mark.parametrize(
    "plan",
    [{"error_rate": 1.01}, {"error_rate": -0.1}, {"latency_ms": -1}, {"outage": "maybe"}, {"x": 1}],
)
def test_an_impossible_plan_is_refused(plan: dict[str, object]) -> None:
    """Rates outside 0..1, negative latency, non-booleans and unknown faults are invalid."""
    with pytest.raises(ValidationError):
        Faults.model_validate(plan)


def test_dropped_answers_follow_the_seed() -> None:
    """About the drop rate of requests lose their answer, the same ones after each change."""
    injector = FaultInjector(ManualClock(), SEED)
    injector.change(Faults(drop_response_rate=0.25))
    first = [injector.drops_response() for _ in range(400)]
    injector.change(Faults(drop_response_rate=0.25))
    assert [injector.drops_response() for _ in range(400)] == first
    assert 70 < sum(first) < 130
    injector.change(Faults())
    assert not any(injector.drops_response() for _ in range(100))


def test_a_plan_seed_replaces_the_service_seed() -> None:
    """Two injectors with different seeds draw alike under a plan that names its own seed."""
    plans = [FaultInjector(ManualClock(), seed) for seed in (1, 2)]
    for injector in plans:
        injector.change(Faults(drop_response_rate=0.5, seed=99))
    draws = [[injector.drops_response() for _ in range(64)] for injector in plans]
    assert draws[0] == draws[1]


def test_a_crash_point_kills_when_drawn_and_only_there() -> None:
    """An armed point kills the process; other points and an unarmed plan never do."""
    kills: list[str] = []
    injector = FaultInjector(
        ManualClock(), SEED, crash_points={"before", "after"}, kill=lambda: kills.append("x")
    )
    injector.reach("before")
    injector.change(Faults(crash_points={"after": 1.0}))
    injector.reach("before")
    assert kills == []
    injector.reach("after")
    assert kills == ["x"]


def test_a_crash_point_fires_at_its_rate() -> None:
    """A point armed at 0.1 kills on about a tenth of the passes, as the seed says."""
    kills: list[int] = []
    injector = FaultInjector(ManualClock(), SEED, crash_points={"p"}, kill=lambda: kills.append(1))
    injector.change(Faults(crash_points={"p": 0.1}))
    for _ in range(1_000):
        injector.reach("p")
    assert 60 < len(kills) < 140


def test_unknown_crash_points_are_refused() -> None:
    """A plan or a call naming a point the service lacks is an error, not a silent no-op."""
    injector = FaultInjector(ManualClock(), SEED, crash_points={"p"})
    with pytest.raises(UnknownCrashPointError, match="has p"):
        injector.change(Faults(crash_points={"q": 1.0}))
    with pytest.raises(UnknownCrashPointError):
        injector.reach("q")
