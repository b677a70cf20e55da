"""A bulkhead: at most `max_concurrent` calls to one dependency, a bounded wait, else refused.

Pattern: each dependency gets its own bulkhead (resilience4j's semaphore bulkhead): a
call takes a slot, or waits for one if fewer than `max_waiting` are waiting already,
for at most `max_wait_s` (and never past its deadline); otherwise it is refused at
once with `CallRejectedError(BULKHEAD_FULL)`. The slot is given back however the call
ends, cancellation included.

Guarantee: a dependency that stops answering can hold at most `max_concurrent` of the
caller's shared resources — here, the connections of the one HTTP pool every
dependency of a hop shares — so its neighbours keep theirs. Failure it handles: one
slow dependency exhausting a shared pool and taking every other call down with it.
The price: calls beyond the limit fail fast even when the dependency might have
answered them.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from labs.clock import Clock
from labs.failsim.policies.errors import AttemptTimedOutError, CallRejectedError, Rejection
from labs.failsim.policies.timeout import within


@dataclass(frozen=True)
class BulkheadSettings:
    """How many calls at once, and how many may wait, for how long."""

    max_concurrent: int = 10
    max_waiting: int = 0
    max_wait_s: float = 0.0

    def __post_init__(self) -> None:
        """Refuse a bulkhead that admits nothing or waits a negative time."""
        if self.max_concurrent < 1 or self.max_waiting < 0 or self.max_wait_s < 0:
            raise ValueError("need max_concurrent >= 1, max_waiting >= 0 and max_wait_s >= 0")


class Bulkhead:
    """Bounded concurrency for one dependency."""

    def __init__(self, clock: Clock, settings: BulkheadSettings) -> None:
        """Start with every slot free."""
        self._clock = clock
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.max_concurrent)
        self.in_use = 0
        self.waiting = 0

    @asynccontextmanager
    async def slot(self, wait_at_most_s: float) -> AsyncIterator[None]:
        """Hold a slot for the block, waiting at most `wait_at_most_s` (and `max_wait_s`)."""
        await self._acquire(min(wait_at_most_s, self.settings.max_wait_s))
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
            self._slots.release()

    async def _acquire(self, wait_s: float) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns without suspending
            return
        if self.waiting >= self.settings.max_waiting or wait_s <= 0:
            raise CallRejectedError(Rejection.BULKHEAD_FULL, self._describe())
        self.waiting += 1
        try:
            await within(self._clock, wait_s, self._slots.acquire)
        except AttemptTimedOutError:
            raise CallRejectedError(Rejection.BULKHEAD_FULL, self._describe()) from None
        finally:
            self.waiting -= 1

    def _describe(self) -> str:
        settings = self.settings
        return f"{settings.max_concurrent} in flight, {self.waiting} waiting"
