"""How far the sliding window approximation strays from the exact sliding log.

Pattern: replay one scripted request sequence through both models (pure, explicit
time) and compare what they admitted. The guarantee measured: the exact log never
admits more than `limit` units in any window of `period_ms`; the sliding window
assumes the previous window's units were spread evenly, so it can pass more (or
fewer). The figure lets the service's report state the approximation's error
instead of calling it exact.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rate_limiter.domain import Algorithm, Limit
from rate_limiter.models import model_for


@dataclass(frozen=True)
class SlidingWindowError:
    """Admissions of the sliding window against the exact log for the same requests."""

    admitted: int
    exact_admitted: int
    worst_window: int
    exact_worst_window: int

    @property
    def overshoot(self) -> int:
        """Return how many units past the limit the worst window admitted (0 if none)."""
        return max(0, self.worst_window - self.exact_worst_window)


def sliding_window_error(limit: Limit, times_us: Sequence[int]) -> SlidingWindowError:
    """Replay unit requests at `times_us` (ascending) through sliding window and log."""
    window = _admitted(limit, times_us)
    exact = _admitted(replace(limit, algorithm=Algorithm.SLIDING_LOG), times_us)
    return SlidingWindowError(
        admitted=len(window),
        exact_admitted=len(exact),
        worst_window=_worst_window(window, limit.period_us),
        exact_worst_window=_worst_window(exact, limit.period_us),
    )


def _admitted(limit: Limit, times_us: Sequence[int]) -> list[int]:
    model = model_for(limit)
    return [now for now in times_us if model.check(now).allowed]


def _worst_window(times_us: list[int], period_us: int) -> int:
    """Return the most of `times_us` (ascending) inside any window (t - period, t]."""
    worst, first = 0, 0
    for last, now in enumerate(times_us):
        while times_us[first] <= now - period_us:
            first += 1
        worst = max(worst, last - first + 1)
    return worst
