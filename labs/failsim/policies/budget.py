"""A retry budget: retries may be at most a share of requests, over a sliding window.

Pattern (the Google SRE book's per-client retry budget, Finagle's `RetryBudget`):
every logical call deposits `ratio` of a retry; each retry withdraws one. Over the
last `window_s` (kept as ten buckets on the injected clock), a retry is allowed while
`retries + 1 <= ratio * requests + min_per_s * window_s`. The floor lets a client that
sends little still retry now and then.

Guarantee: however many attempts the retry policy would allow, the calls this client
sends are at most `(1 + ratio)` times its requests, plus the floor — about 1.1x with
the default 10 %, where 3 attempts everywhere reach 1.39x at 30 % errors and 3x when
the dependency is down. Failure it handles: a retry storm, where retries multiply the
load on a dependency that is failing because of load. The price: when failures pass
the ratio, calls that a retry would have saved fail.
"""

from collections import deque
from dataclasses import dataclass

from labs.clock import Clock

BUCKETS = 10


@dataclass(frozen=True)
class BudgetSettings:
    """The share of requests that may be retried, over what window, with what floor."""

    ratio: float = 0.1
    min_per_s: float = 0.0
    window_s: float = 10.0

    def __post_init__(self) -> None:
        """Refuse a negative budget or an empty window."""
        if self.ratio < 0 or self.min_per_s < 0 or self.window_s <= 0:
            raise ValueError("need ratio >= 0, min_per_s >= 0 and window_s > 0")


@dataclass
class _Bucket:
    start: float
    requests: int = 0
    retries: int = 0


class RetryBudget:
    """Counts requests and retries over a sliding window; allows retries within the ratio."""

    def __init__(self, clock: Clock, settings: BudgetSettings) -> None:
        """Start empty: until requests arrive, only the floor allows retries."""
        self._clock = clock
        self.settings = settings
        self._width = settings.window_s / BUCKETS
        self._buckets: deque[_Bucket] = deque()

    def record_request(self) -> None:
        """Count a logical call (its first attempt)."""
        self._current().requests += 1

    def try_spend(self) -> bool:
        """Count a retry and return True if the budget allows one now, else return False."""
        current = self._current()
        requests = sum(bucket.requests for bucket in self._buckets)
        retries = sum(bucket.retries for bucket in self._buckets)
        allowed = self.settings.ratio * requests + self.settings.min_per_s * self.settings.window_s
        if retries + 1 > allowed:
            return False
        current.retries += 1
        return True

    def _current(self) -> _Bucket:
        """Return the bucket for now, dropping the buckets that left the window."""
        now = self._clock.monotonic()
        start = now - now % self._width
        while self._buckets and self._buckets[0].start <= now - self.settings.window_s:
            self._buckets.popleft()
        if not self._buckets or self._buckets[-1].start != start:
            self._buckets.append(_Bucket(start))
        return self._buckets[-1]
