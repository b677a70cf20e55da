"""What a policy-wrapped call can end in, besides an answer.

Two families, because the policies treat them differently:

- `DependencyFailedError`: the dependency failed (an error status, a broken
  connection, a timed-out attempt). The breaker counts it; the retry policy retries
  it when `retryable` says a new attempt may succeed.
- `CallRejectedError`: a policy refused the call locally, without reaching the
  dependency (breaker open, bulkhead full, deadline spent, retries given up). Never
  retried by the policy that raised it, and sent upstream with a "do not retry" mark
  so that callers further up do not multiply it either.
"""

from enum import StrEnum


class DependencyFailedError(Exception):
    """The dependency was reached and failed."""

    def __init__(self, detail: str, *, retryable: bool) -> None:
        """Describe the failure; `retryable` says whether another attempt may succeed."""
        super().__init__(detail)
        self.retryable = retryable


class AttemptTimedOutError(DependencyFailedError):
    """An attempt outlived its timeout and was cancelled."""

    def __init__(self, seconds: float) -> None:
        """Name the timeout that ran out."""
        super().__init__(f"no answer within {seconds * 1000:.0f} ms", retryable=True)


class Rejection(StrEnum):
    """Why a policy refused a call."""

    BREAKER_OPEN = "breaker_open"
    BULKHEAD_FULL = "bulkhead_full"
    DEADLINE = "deadline"
    ATTEMPTS = "attempts"
    BUDGET = "budget"
    DO_NOT_RETRY = "do_not_retry"


class CallRejectedError(Exception):
    """A policy refused the call (or gave up on it) without a further attempt."""

    def __init__(self, reason: Rejection, detail: str) -> None:
        """Say which policy refused, and why."""
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
