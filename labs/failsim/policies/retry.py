"""Retries: up to `attempts` tries, a backoff between them, within a deadline and a budget.

Pattern: `Retry.run` makes the first attempt and, while the failure is retryable,
asks three questions before each further one: attempts left? time left on the
deadline for the backoff sleep and some of the attempt? budget left? A "no" ends the
call with `CallRejectedError` naming which (`ATTEMPTS`, `DEADLINE`, `BUDGET`), chained
to the last failure. A refusal by a policy further in (an open breaker, a full
bulkhead) is never retried: it would be refused again, at once.

Guarantee: at most `attempts` calls per request; never a sleep past the deadline;
and with a budget, retries within its ratio of requests (`labs.failsim.policies.budget`).
Failures it handles: transient errors, lost answers and timed-out attempts — and the
three ways retries hurt: amplification (budget), synchronised retries (jitter,
`labs.failsim.policies.backoff`) and retries that ignore deadlines.
"""

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from labs.clock import Clock
from labs.failsim.policies.backoff import Backoff
from labs.failsim.policies.budget import RetryBudget
from labs.failsim.policies.deadline import Deadline
from labs.failsim.policies.errors import CallRejectedError, DependencyFailedError, Rejection

T = TypeVar("T")


@dataclass(frozen=True)
class Retry:
    """A retry policy; the budget is shared by every call to one dependency."""

    attempts: int
    backoff: Backoff
    budget: RetryBudget | None = None

    def __post_init__(self) -> None:
        """Refuse a policy that would never make a call."""
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        deadline: Deadline,
        clock: Clock,
        rng: random.Random,
    ) -> T:
        """Return the first successful attempt's result, retrying as the policy allows."""
        if self.budget is not None:
            self.budget.record_request()
        delays = self.backoff.delays(rng)
        made = 0
        while True:
            made += 1
            try:
                return await attempt()
            except DependencyFailedError as failure:
                if not failure.retryable:
                    raise
                delay = next(delays)
                refusal = self._refusal(made, delay, deadline)
                if refusal is not None:
                    raise refusal from failure
            await clock.sleep(delay)

    def _refusal(self, made: int, delay: float, deadline: Deadline) -> CallRejectedError | None:
        """Return why no further attempt is made, or None to retry after `delay`."""
        if made >= self.attempts:
            return CallRejectedError(Rejection.ATTEMPTS, f"{made} attempt(s) failed")
        if delay >= deadline.remaining():
            return CallRejectedError(
                Rejection.DEADLINE, f"a {delay * 1000:.0f} ms backoff would pass the deadline"
            )
        if self.budget is not None and not self.budget.try_spend():
            return CallRejectedError(Rejection.BUDGET, "the retry budget is spent")
        return None
