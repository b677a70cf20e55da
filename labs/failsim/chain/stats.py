"""What a hop counts, for the runner to read and reset between runs (`GET/DELETE /v1/stats`).

Counts are exact (a process's own integers, no sampling), so "calls per request at
each hop" is `received / requests sent`, and retries show as `attempts - requests`
on each edge.
"""

from pydantic import BaseModel, Field

MAX_SAMPLES = 10_000
"""Fail-fast durations kept per edge: enough for a p99, bounded in memory."""


class Transition(BaseModel):
    """A breaker's change of state, at wall-clock time."""

    state: str
    at: float


class EdgeStats(BaseModel):
    """One edge (this hop calling one dependency)."""

    requests: int = Field(default=0, description="Logical calls.")
    attempts: int = Field(default=0, description="Attempts sent (past breaker and bulkhead).")
    succeeded: int = 0
    failed: int = Field(default=0, description="Logical calls that ended in a failure.")
    rejected: dict[str, int] = Field(default_factory=dict, description="Refusals by reason.")
    transitions: list[Transition] = Field(default_factory=list)
    fail_fast_ms: list[float] = Field(
        default_factory=list, description="How long calls refused by an open breaker took."
    )

    def reject(self, reason: str) -> None:
        """Count a refusal."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def fail_fast(self, milliseconds: float) -> None:
        """Keep one fail-fast duration (the first `MAX_SAMPLES`)."""
        if len(self.fail_fast_ms) < MAX_SAMPLES:
            self.fail_fast_ms.append(milliseconds)


class HopStats(BaseModel):
    """A hop's counts since the last reset."""

    name: str
    received: int = Field(
        default=0, description="Work requests that arrived, counted before any injected fault."
    )
    edges: dict[str, EdgeStats] = Field(default_factory=dict)
    side_effects: int = Field(default=0, description="Side effects in the ledger.")
    distinct_requests: int = Field(default=0, description="Requests with a side effect.")


class Arrivals:
    """Counts work requests as they arrive, before the fault injector can refuse them."""

    def __init__(self) -> None:
        """Start at zero."""
        self.count = 0
