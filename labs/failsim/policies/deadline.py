"""Deadlines: one time budget for a request, carried across every hop and every retry.

Pattern: the first hop turns its caller's budget into a `Deadline` (an instant on the
injected clock's monotonic time); each outgoing call sends what is left of it in the
`X-Deadline-Ms` header, and the next hop builds its own `Deadline` from that. Each
attempt's timeout is capped by what remains, and a retry whose backoff would end past
the deadline is not made.

Guarantee: no hop works, waits or retries on a request past its caller's deadline
(plus the transit time of one message, which a relative header does not see: the
price of not trusting clocks across machines, the choice gRPC makes too).
Failure it handles: "retries that ignore deadlines" — a hop that keeps retrying, or a
downstream that keeps working, for a caller who has already given up.
"""

import math
from dataclasses import dataclass
from typing import Self

from labs.clock import Clock
from labs.failsim.policies.errors import CallRejectedError, Rejection

DEADLINE_HEADER = "X-Deadline-Ms"


@dataclass(frozen=True)
class Deadline:
    """The instant (on `clock.monotonic()`) by which a request must be answered."""

    clock: Clock
    at: float

    @classmethod
    def after(cls, clock: Clock, seconds: float) -> Self:
        """Return the deadline `seconds` from now."""
        return cls(clock, clock.monotonic() + seconds)

    @classmethod
    def from_header(
        cls, clock: Clock, value: str | None, default_s: float, since: float | None = None
    ) -> Self:
        """Return the deadline a caller sent (remaining ms), or `default_s` if none.

        It counts from `since` (the request's arrival on `clock.monotonic()`, so time spent
        before the handler ran is spent), else from now. A malformed value is treated as
        absent: the hop still bounds its work.
        """
        try:
            remaining_s = max(0.0, int(value or "") / 1000)
        except ValueError:
            remaining_s = default_s
        return cls(clock, (clock.monotonic() if since is None else since) + remaining_s)

    def remaining(self) -> float:
        """Return the seconds left (0 once passed)."""
        return max(0.0, self.at - self.clock.monotonic())

    @property
    def expired(self) -> bool:
        """Return whether nothing is left."""
        return self.remaining() <= 0

    def header_value(self) -> str:
        """Return the remaining whole milliseconds, rounded down, for `X-Deadline-Ms`."""
        return str(math.floor(self.remaining() * 1000))

    def cap(self, seconds: float | None) -> float:
        """Return `seconds` shortened to what remains (what remains if `seconds` is None)."""
        remaining = self.remaining()
        return remaining if seconds is None else min(seconds, remaining)

    def check(self) -> None:
        """Raise `CallRejectedError(DEADLINE)` if the deadline has passed."""
        if self.expired:
            raise CallRejectedError(Rejection.DEADLINE, "the caller's deadline has passed")
