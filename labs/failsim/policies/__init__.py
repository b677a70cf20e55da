"""Client policies for calls between services, each small, pure and on an injected clock.

`Policies` (in `stack`) composes them in the order its docstring justifies: deadline,
retry with budget, breaker, bulkhead, timeout, call. Each is usable alone.
"""

from labs.failsim.policies.backoff import Backoff, Jitter
from labs.failsim.policies.breaker import BreakerSettings, BreakerState, CircuitBreaker
from labs.failsim.policies.budget import BudgetSettings, RetryBudget
from labs.failsim.policies.bulkhead import Bulkhead, BulkheadSettings
from labs.failsim.policies.deadline import DEADLINE_HEADER, Deadline
from labs.failsim.policies.errors import (
    AttemptTimedOutError,
    CallRejectedError,
    DependencyFailedError,
    Rejection,
)
from labs.failsim.policies.retry import Retry
from labs.failsim.policies.stack import Policies
from labs.failsim.policies.timeout import within

__all__ = [
    "DEADLINE_HEADER",
    "AttemptTimedOutError",
    "Backoff",
    "BreakerSettings",
    "BreakerState",
    "BudgetSettings",
    "Bulkhead",
    "BulkheadSettings",
    "CallRejectedError",
    "CircuitBreaker",
    "Deadline",
    "DependencyFailedError",
    "Jitter",
    "Policies",
    "Rejection",
    "Retry",
    "RetryBudget",
    "within",
]
