"""The rate limiter's vocabulary: algorithms, limits and decisions (pure, no I/O).

Pattern: value objects validated once, at construction. Guarantee: a `Limit` that
exists can be run exactly by every part of the limiter — the Python models and the
Lua script agree to the microsecond because every quantity they compute is an integer
below 2**52, which a Redis Lua number (an IEEE double) holds exactly. The failure it
handles: a rule whose numbers would lose precision in Lua, or a request that could
never be allowed, is refused with a clear `ValueError` instead of deciding wrongly.
"""

from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from math import gcd

US_PER_MS = 1_000
MAX_EXACT = 2**52
"""Every integer the limiter computes stays at or below this, so that a double holds it
exactly and the sum of two such integers (at most 2**53) does too."""
MAX_PERIOD_MS = 366 * 24 * 3600 * 1000


class Algorithm(StrEnum):
    """The five limiting algorithms."""

    TOKEN_BUCKET = "token_bucket"  # noqa: S105 - an algorithm, not a secret
    GCRA = "gcra"
    SLIDING_LOG = "sliding_log"
    SLIDING_WINDOW = "sliding_window"
    FIXED_WINDOW = "fixed_window"


EXACT_ALGORITHMS: frozenset[Algorithm] = frozenset(Algorithm) - {Algorithm.SLIDING_WINDOW}
BUCKET_ALGORITHMS: frozenset[Algorithm] = frozenset({Algorithm.TOKEN_BUCKET, Algorithm.GCRA})


class CostTooHigh(ValueError):  # noqa: N818 - the name is the interface
    """The cost exceeds the limit's capacity: such a request could never be allowed."""


@dataclass(frozen=True)
class Limit:
    """`limit` units per `period_ms`, enforced by `algorithm`.

    `burst` is the bucket capacity of token_bucket and gcra (default: `limit`); the
    window algorithms take none. Limits that would need integers above `MAX_EXACT` are
    refused: for the buckets, capacity * period_us / gcd(limit, period_us) (e.g.
    1,000,000 per day is fine, 999,983 per day is not); for sliding_window, limit *
    period_us (e.g. 50,000 per day or 1,000,000 per hour).
    """

    algorithm: Algorithm
    limit: int
    period_ms: int
    burst: int | None = None

    def __post_init__(self) -> None:
        """Refuse values no algorithm can run exactly."""
        if self.limit < 1:
            raise ValueError(f"limit must be at least 1, got {self.limit}")
        if not 1 <= self.period_ms <= MAX_PERIOD_MS:
            raise ValueError(
                f"period_ms must be 1..{MAX_PERIOD_MS} (366 days), got {self.period_ms}"
            )
        if self.burst is not None and self.algorithm not in BUCKET_ALGORITHMS:
            raise ValueError(f"burst applies to token_bucket and gcra only, not {self.algorithm}")
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {self.burst}")
        if self.exactness_product > MAX_EXACT:
            raise ValueError(
                f"{self.algorithm} {self.limit}/{self.period_ms}ms (burst {self.burst}) needs "
                f"integers above 2**52 ({self.exactness_product}); use a shorter period or a "
                "limit that divides the period in microseconds"
            )

    @property
    def capacity(self) -> int:
        """Return the most units a single request can ever be granted (burst or limit)."""
        return self.limit if self.burst is None else self.burst

    @property
    def period_us(self) -> int:
        """Return the period in microseconds."""
        return self.period_ms * US_PER_MS

    @cached_property
    def rate(self) -> tuple[int, int]:
        """Return the refill rate as `(units, per_us)` in lowest terms: limit / period_us."""
        divisor = gcd(self.limit, self.period_us)
        return self.limit // divisor, self.period_us // divisor

    @property
    def exactness_product(self) -> int:
        """Return the largest integer this limit's arithmetic needs (checked against 2**52)."""
        if self.algorithm in BUCKET_ALGORITHMS:
            return self.capacity * self.rate[1]
        if self.algorithm is Algorithm.SLIDING_WINDOW:
            return self.limit * self.period_us
        return self.period_us


@dataclass(frozen=True)
class Decision:
    """What the limiter answered for one check.

    `remaining`: whole units a further request could be granted right after this
    decision (>= 0). `reset_after_ms`: until the limiter is back to full capacity.
    `retry_after_ms`: 0 when allowed; when denied, until the same cost would be allowed
    (>= 1). Both durations are rounded up to whole milliseconds.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after_ms: int
    retry_after_ms: int


def validate_cost(limit: Limit, cost: int) -> None:
    """Refuse a cost below 1 (`ValueError`) or above the capacity (`CostTooHigh`)."""
    if cost < 1:
        raise ValueError(f"cost must be at least 1, got {cost}")
    if cost > limit.capacity:
        raise CostTooHigh(f"cost {cost} exceeds the capacity {limit.capacity}: it could never pass")


def ceil_div(numerator: int, denominator: int) -> int:
    """Return numerator / denominator rounded up (integers, denominator > 0)."""
    return -(-numerator // denominator)


def us_to_ms(duration_us: int) -> int:
    """Return a duration in microseconds as whole milliseconds, rounded up."""
    return ceil_div(duration_us, US_PER_MS)
