"""An injectable clock, so that nothing in the lab waits on real time in a test.

Pattern: code that reads time or sleeps takes a `Clock`. Production passes
`SystemClock`; tests pass `ManualClock` and move time with `advance()`, so a backoff
of an hour is tested in microseconds and a timeout never races the machine's load.
"""

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Wall time, monotonic time and sleeping."""

    def time(self) -> float:
        """Return wall-clock seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes back."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller for `seconds`."""
        ...


class SystemClock:
    """The machine's clocks."""

    def time(self) -> float:
        """Return `time.time()`."""
        return time.time()

    def monotonic(self) -> float:
        """Return `time.monotonic()`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that moves only when told; sleepers wake when time passes their deadline."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        """Start at `start` seconds since the epoch."""
        self._now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def time(self) -> float:
        """Return the current manual time."""
        return self._now

    def monotonic(self) -> float:
        """Return the current manual time (it never goes back)."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until `advance()` moves time past now + `seconds`."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self._now + seconds, waiter)
        self._sleepers.append(entry)
        try:
            await waiter
        finally:  # a cancelled sleep is no longer asleep
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` and wake every sleeper whose deadline passed."""
        if seconds < 0:
            raise ValueError("a clock cannot go back")
        self._now += seconds
        due = [waiter for deadline, waiter in self._sleepers if deadline <= self._now]
        self._sleepers = [entry for entry in self._sleepers if entry[0] > self._now]
        for waiter in due:
            if not waiter.done():
                waiter.set_result(None)

    @property
    def sleepers(self) -> int:
        """Return how many coroutines are asleep on this clock."""
        return len(self._sleepers)

    @property
    def deadlines(self) -> list[float]:
        """Return when each sleeper wakes, soonest first."""
        return sorted(deadline for deadline, _ in self._sleepers)
