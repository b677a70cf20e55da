"""The manual clock: time moves only when told, and sleepers wake exactly then."""

import asyncio
import contextlib

import pytest

from labs.clock import ManualClock


async def test_sleeper_wakes_only_when_time_passes_its_deadline() -> None:
    """A one-hour sleep ends when the clock is advanced an hour, not before."""
    clock = ManualClock(start=100.0)
    sleeper = asyncio.create_task(clock.sleep(3600))
    await asyncio.sleep(0)
    clock.advance(3599)
    await asyncio.sleep(0)
    assert not sleeper.done()
    clock.advance(1)
    await asyncio.wait_for(sleeper, 1)
    assert clock.time() == 100.0 + 3600


async def test_sleepers_wake_in_deadline_order_and_only_the_due_ones() -> None:
    """Advancing past one deadline wakes that sleeper and leaves the later one asleep."""
    clock = ManualClock()
    woke: list[str] = []

    async def nap(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(nap("short", 1)), asyncio.create_task(nap("long", 5))]
    await asyncio.sleep(0)
    clock.advance(2)
    await asyncio.sleep(0)
    assert woke == ["short"]
    assert clock.sleepers == 1
    clock.advance(3)
    await asyncio.gather(*tasks)
    assert woke == ["short", "long"]


def test_clock_refuses_to_go_back() -> None:
    """Time never moves backwards."""
    with pytest.raises(ValueError, match="cannot go back"):
        ManualClock().advance(-1)


async def test_a_cancelled_sleep_is_no_longer_counted() -> None:
    """Cancelling a sleep removes it from the sleepers and their deadlines."""
    clock = ManualClock(start=100.0)
    sleeping = asyncio.create_task(clock.sleep(5))
    await asyncio.sleep(0)
    assert (clock.sleepers, clock.deadlines) == (1, [105.0])
    sleeping.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sleeping
    assert (clock.sleepers, clock.deadlines) == (0, [])
