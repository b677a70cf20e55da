"""Policy settings as data: what a scenario file writes and `PUT /v1/policies` accepts.

Each edge of the chain (`caller->dependency`) gets an `EdgePolicy`; `build()` turns it
into the `Policies` object that wraps every call along that edge. Durations are in
milliseconds here, as in the files; the policies work in seconds.
"""

import random

from pydantic import BaseModel, ConfigDict, Field

from labs.clock import Clock
from labs.failsim.policies import (
    Backoff,
    BreakerSettings,
    BudgetSettings,
    Bulkhead,
    BulkheadSettings,
    CircuitBreaker,
    Jitter,
    Policies,
    Retry,
    RetryBudget,
)
from labs.failsim.policies.breaker import Transition


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryConfig(_Strict):
    """Attempts and backoff; whether to obey a dependency's "do not retry"."""

    attempts: int = Field(default=1, ge=1, le=10)
    jitter: Jitter = Jitter.FULL
    base_ms: float = Field(default=10.0, gt=0)
    cap_ms: float = Field(default=1_000.0, gt=0)
    honour_do_not_retry: bool = Field(
        default=True, description="Never retry an answer marked X-Do-Not-Retry."
    )


class BudgetConfig(_Strict):
    """Retries at most `ratio` of requests over `window_s`, plus `min_per_s`."""

    ratio: float = Field(default=0.1, ge=0, le=1)
    min_per_s: float = Field(default=0.0, ge=0)
    window_s: float = Field(default=10.0, gt=0)


class BreakerConfig(_Strict):
    """When the breaker opens, for how long, and how many half-open probes."""

    window: int = Field(default=20, ge=1)
    min_calls: int = Field(default=10, ge=1)
    failure_ratio: float = Field(default=0.5, gt=0, le=1)
    open_ms: float = Field(default=1_000.0, gt=0)
    probes: int = Field(default=2, ge=1)
    half_open_max_ms: float = Field(default=5_000.0, gt=0)


class BulkheadConfig(_Strict):
    """Calls in flight at most, and how many may wait, for how long."""

    max_concurrent: int = Field(default=10, ge=1)
    max_waiting: int = Field(default=0, ge=0)
    max_wait_ms: float = Field(default=0.0, ge=0)


class EdgePolicy(_Strict):
    """The client policies along one edge; each left out is off (one attempt, no key)."""

    timeout_ms: float | None = Field(default=1_000.0, gt=0, description="Per attempt.")
    retry: RetryConfig = RetryConfig()
    budget: BudgetConfig | None = None
    breaker: BreakerConfig | None = None
    bulkhead: BulkheadConfig | None = None
    idempotency_keys: bool = Field(
        default=False, description="Send one Idempotency-Key per logical call, on every attempt."
    )

    def build(self, clock: Clock, rng: random.Random, on_transition: Transition) -> Policies:
        """Return fresh policies (a new breaker, budget and bulkhead) for this edge."""
        return Policies(
            clock,
            rng,
            retry=_retry(self.retry, None if self.budget is None else _budget(self.budget, clock)),
            breaker=None if self.breaker is None else _breaker(self.breaker, clock, on_transition),
            bulkhead=None if self.bulkhead is None else _bulkhead(self.bulkhead, clock),
            attempt_timeout_s=None if self.timeout_ms is None else self.timeout_ms / 1000,
        )


def _retry(config: RetryConfig, budget: RetryBudget | None) -> Retry:
    cap_ms = max(config.cap_ms, config.base_ms)
    return Retry(
        config.attempts, Backoff(config.jitter, config.base_ms / 1000, cap_ms / 1000), budget
    )


def _budget(config: BudgetConfig, clock: Clock) -> RetryBudget:
    return RetryBudget(clock, BudgetSettings(config.ratio, config.min_per_s, config.window_s))


def _breaker(config: BreakerConfig, clock: Clock, on_transition: Transition) -> CircuitBreaker:
    settings = BreakerSettings(
        window=config.window,
        min_calls=config.min_calls,
        failure_ratio=config.failure_ratio,
        open_s=config.open_ms / 1000,
        probes=config.probes,
        half_open_max_s=config.half_open_max_ms / 1000,
    )
    return CircuitBreaker(clock, settings, on_transition=on_transition)


def _bulkhead(config: BulkheadConfig, clock: Clock) -> Bulkhead:
    settings = BulkheadSettings(
        config.max_concurrent, config.max_waiting, config.max_wait_ms / 1000
    )
    return Bulkhead(clock, settings)
