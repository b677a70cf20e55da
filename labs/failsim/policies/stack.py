"""The policies composed: one `Policies` per dependency, wrapping every call to it.

Order, outermost first, and why:

1. **deadline** — the caller's budget bounds everything below, retries included: a
   call that arrives with no time left is refused before it costs anything.
2. **retry** (with its **budget**) — around the breaker, so that each attempt is
   judged by the breaker, and an attempt refused by an open breaker ends the retries
   at once instead of spending them (resilience4j and Polly recommend this order).
3. **breaker** — around the bulkhead, so a call the breaker refuses holds no slot;
   a full bulkhead is the caller's own limit, not the dependency's failure, so it
   neither trips the breaker nor spends a half-open probe.
4. **bulkhead** — the slot is held for the attempt only, not across backoff sleeps.
5. **timeout** — per attempt, capped by what remains of the deadline; the cancelled
   attempt gives its slot and probe back before the timeout is reported.
6. **the call** — the adapter (`labs.failsim.chain.client`) turns answers into results
   or `DependencyFailedError`s, and adds the idempotency key, which lives there
   because it is part of the request, not of the schedule.

Every piece is optional; `Policies()` with nothing set makes one attempt bounded by
the deadline.
"""

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from labs.clock import Clock
from labs.failsim.policies.breaker import CircuitBreaker
from labs.failsim.policies.bulkhead import Bulkhead
from labs.failsim.policies.deadline import Deadline
from labs.failsim.policies.retry import Retry
from labs.failsim.policies.timeout import within

T = TypeVar("T")


@dataclass
class Policies:
    """The client policies for one dependency."""

    clock: Clock
    rng: random.Random
    retry: Retry | None = None
    breaker: CircuitBreaker | None = None
    bulkhead: Bulkhead | None = None
    attempt_timeout_s: float | None = None

    async def call(self, attempt: Callable[[], Awaitable[T]], deadline: Deadline) -> T:
        """Run `attempt` under every policy set here, outermost first."""
        deadline.check()

        async def guarded() -> T:
            return await self._guarded(attempt, deadline)

        if self.retry is None:
            return await guarded()
        return await self.retry.run(guarded, deadline, self.clock, self.rng)

    async def _guarded(self, attempt: Callable[[], Awaitable[T]], deadline: Deadline) -> T:
        if self.breaker is None:
            return await self._bounded(attempt, deadline)
        async with self.breaker.permit():
            return await self._bounded(attempt, deadline)

    async def _bounded(self, attempt: Callable[[], Awaitable[T]], deadline: Deadline) -> T:
        if self.bulkhead is None:
            return await self._timed(attempt, deadline)
        async with self.bulkhead.slot(deadline.remaining()):
            return await self._timed(attempt, deadline)

    async def _timed(self, attempt: Callable[[], Awaitable[T]], deadline: Deadline) -> T:
        deadline.check()
        return await within(self.clock, deadline.cap(self.attempt_timeout_s), attempt)
