"""Percentiles and histograms at full precision (Locust's own are rounded to whole ms)."""

import math
from collections.abc import Sequence

PERCENTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p99.9", 0.999))


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Return the nearest-rank `q` quantile of sorted values (None when there are none)."""
    if not ordered:
        return None
    rank = min(len(ordered), max(1, math.ceil(q * len(ordered) - 1e-9)))
    return ordered[rank - 1]


def latency_summary(values_ms: Sequence[float], digits: int = 4) -> dict[str, float | None]:
    """Return p50, p95, p99, p99.9 and the mean of `values_ms`, rounded to `digits`."""
    ordered = sorted(values_ms)
    summary: dict[str, float | None] = {}
    for name, q in PERCENTILES:
        value = percentile(ordered, q)
        summary[name] = None if value is None else round(value, digits)
    summary["mean"] = round(sum(ordered) / len(ordered), digits) if ordered else None
    return summary


BUCKETS_PER_DECADE = 10


def latency_histogram(values_ms: Sequence[float]) -> list[list[float]]:
    """Return `[lower_ms, upper_ms, count]` for each non-empty log-spaced bucket, in order.

    Ten buckets per decade (each about 26% wider than the last), so a histogram of
    microseconds and one of seconds read the same on a log axis.
    """
    counts: dict[int, int] = {}
    for value in values_ms:
        bucket = math.floor(math.log10(max(value, 1e-6)) * BUCKETS_PER_DECADE)
        counts[bucket] = counts.get(bucket, 0) + 1
    return [
        [
            round(10 ** (bucket / BUCKETS_PER_DECADE), 6),
            round(10 ** ((bucket + 1) / BUCKETS_PER_DECADE), 6),
            count,
        ]
        for bucket, count in sorted(counts.items())
    ]
