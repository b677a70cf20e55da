"""A circuit breaker: closed, open, half-open with a bounded number of probes.

Pattern (the mechanism is the lab's own, so it can be read and tested here; decision
0014): while **closed**, the outcomes of the last `window` calls are kept; once at
least `min_calls` are in and the share of failures reaches `failure_ratio`, it
**opens**: every call is refused at once (`CallRejectedError(BREAKER_OPEN)`) for
`open_s`. Then it is **half-open**: at most `probes` calls are let through, and only
while fewer than `probes` are in flight; `probes` successes close it, one failure
opens it again. Time is read from the injected clock, so tests move it.

Guarantees, each a regression test for a bug users of breaker libraries have hit:

- *Too many calls let through on half-open*: the decision to admit a probe and the
  count of probes in flight change in one step, with no `await` between, so however
  many calls arrive at the instant the breaker turns half-open, exactly `probes` get
  through.
- *Stuck half-open*: a probe that is cancelled (its caller gave up, a timeout fired)
  or refused further in (a full bulkhead) gives its slot back without a verdict; and
  a probe that never returns at all is written off after `half_open_max_s`: the
  breaker opens again and, after `open_s`, admits fresh probes. A verdict that comes
  back after its half-open period ended is ignored (each period has a generation).

What counts as a failure is the caller's choice (`failures`): here, a dependency
error or an attempt timeout, not a local refusal.
"""

from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum

from labs.clock import Clock
from labs.failsim.policies.errors import CallRejectedError, DependencyFailedError, Rejection


class BreakerState(StrEnum):
    """Where the breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerSettings:
    """When to open, for how long, and how many probes to let through half-open."""

    window: int = 20
    min_calls: int = 10
    failure_ratio: float = 0.5
    open_s: float = 1.0
    probes: int = 2
    half_open_max_s: float = 5.0

    def __post_init__(self) -> None:
        """Refuse settings under which the breaker could never open or never close."""
        if not 1 <= self.min_calls <= self.window:
            raise ValueError("need 1 <= min_calls <= window")
        if not 0 < self.failure_ratio <= 1:
            raise ValueError("failure_ratio must be in (0, 1]")
        if self.probes < 1 or self.open_s <= 0 or self.half_open_max_s <= 0:
            raise ValueError("need probes >= 1, open_s > 0 and half_open_max_s > 0")


Transition = Callable[[BreakerState], None]


def _ignore(state: BreakerState) -> None:
    del state


class CircuitBreaker:
    """A per-dependency breaker; `permit()` wraps each call."""

    def __init__(
        self,
        clock: Clock,
        settings: BreakerSettings,
        *,
        failures: tuple[type[BaseException], ...] = (DependencyFailedError,),
        on_transition: Transition = _ignore,
    ) -> None:
        """Start closed; `on_transition` hears every change of state."""
        self._clock = clock
        self.settings = settings
        self._failures = failures
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._outcomes: deque[bool] = deque(maxlen=settings.window)
        self._since = clock.monotonic()
        self._probes_admitted = 0
        self._probes_in_flight = 0
        self._probe_successes = 0

    @property
    def state(self) -> BreakerState:
        """Return the state now (an open breaker turns half-open when its time is up)."""
        self._advance()
        return self._state

    @property
    def probes_in_flight(self) -> int:
        """Return how many half-open probes are running now."""
        return self._probes_in_flight

    @asynccontextmanager
    async def permit(self) -> AsyncIterator[None]:
        """Admit the call or raise `CallRejectedError(BREAKER_OPEN)`; record how it ends."""
        generation, probe = self._admit()
        try:
            yield
        except self._failures:
            self._settle(generation, probe, success=False)
            raise
        except BaseException:
            self._release(generation, probe)
            raise
        else:
            self._settle(generation, probe, success=True)

    def _admit(self) -> tuple[int, bool]:
        """Decide, with no await, whether the call goes through and whether it is a probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return self._generation, False
        probes = self.settings.probes
        if state is BreakerState.HALF_OPEN and self._probes_admitted < probes:
            self._probes_admitted += 1
            self._probes_in_flight += 1
            return self._generation, True
        detail = "open" if state is BreakerState.OPEN else f"half-open, {probes} probe(s) out"
        raise CallRejectedError(Rejection.BREAKER_OPEN, detail)

    def _settle(self, generation: int, probe: bool, *, success: bool) -> None:  # noqa: FBT001
        if generation != self._generation:
            return  # a verdict from a period that has ended
        if probe:
            self._probes_in_flight -= 1
            self._settle_probe(success=success)
            return
        self._outcomes.append(success)
        if self._should_open():
            self._move(BreakerState.OPEN)

    def _settle_probe(self, *, success: bool) -> None:
        if not success:
            self._move(BreakerState.OPEN)
            return
        self._probe_successes += 1
        if self._probe_successes >= self.settings.probes:
            self._move(BreakerState.CLOSED)

    def _release(self, generation: int, probe: bool) -> None:  # noqa: FBT001
        """Give back the slot of a probe that ended without a verdict: another may take it."""
        if probe and generation == self._generation:
            self._probes_in_flight -= 1
            self._probes_admitted -= 1

    def _should_open(self) -> bool:
        calls = len(self._outcomes)
        failures = calls - sum(self._outcomes)
        settings = self.settings
        return calls >= settings.min_calls and failures >= settings.failure_ratio * calls

    def _advance(self) -> None:
        """Apply the transitions that time alone makes."""
        elapsed = self._clock.monotonic() - self._since
        if self._state is BreakerState.OPEN and elapsed >= self.settings.open_s:
            self._move(BreakerState.HALF_OPEN)
        elif self._state is BreakerState.HALF_OPEN and elapsed >= self.settings.half_open_max_s:
            self._move(BreakerState.OPEN)  # probes that never came back are written off

    def _move(self, state: BreakerState) -> None:
        self._state = state
        self._generation += 1
        self._since = self._clock.monotonic()
        self._outcomes.clear()
        self._probes_admitted = self._probes_in_flight = self._probe_successes = 0
        self._on_transition(state)
