"""How far the sliding-window approximation strays from the exact sliding log.

The sliding window keeps two counters and weights the previous window as if its units
had arrived evenly. Replayed through both pure models (the specification the Lua
matches), three arrival patterns show its error: a burst at the end of a window
followed by heavy traffic (its worst case), steady overload, and seeded random
(Poisson) overload. Reported per pattern: units admitted by each, and the most each
admitted inside any true window of the period (the exact log never exceeds the limit).
Writes `sliding-window-error.json`.
"""

import random
from dataclasses import asdict

from labs.experiments import ExperimentContext, Size
from labs.results import save_results
from rate_limiter.accuracy import SlidingWindowError, sliding_window_error
from rate_limiter.domain import Algorithm, Limit

LIMIT = Limit(Algorithm.SLIDING_WINDOW, 100, 1_000)
START_US = 1_700_000_000_000_000
MS = 1_000


def patterns(seed: int, seconds: int) -> dict[str, list[int]]:
    """Arrival times (µs, ascending) of unit requests for each pattern, at 2x the limit."""
    gap_us = LIMIT.period_us // (2 * LIMIT.limit)
    burst = [START_US + 900 * MS + i for i in range(LIMIT.limit)]
    after_burst = [START_US + 1_000 * MS + i * gap_us for i in range(2 * LIMIT.limit * seconds)]
    steady = [START_US + i * gap_us for i in range(2 * LIMIT.limit * seconds)]
    rng = random.Random(seed)
    poisson, now = [], START_US
    for _ in range(2 * LIMIT.limit * seconds):
        now += max(1, round(rng.expovariate(1 / gap_us)))
        poisson.append(now)
    return {"burst then 2x": burst + after_burst, "steady 2x": steady, "poisson 2x": poisson}


def _row(name: str, error: SlidingWindowError) -> dict[str, object]:
    return {
        "pattern": name,
        **asdict(error),
        "overshoot": error.overshoot,
        "overshoot_pct": round(100 * error.overshoot / LIMIT.limit, 1),
    }


async def run(context: ExperimentContext) -> str:
    """Replay each pattern through both models; write the table."""
    seconds = 60 if context.size is Size.FULL else 10
    rows = [
        _row(name, sliding_window_error(LIMIT, times))
        for name, times in patterns(context.seed, seconds).items()
    ]
    save_results(
        context.results_dir,
        "sliding-window-error",
        {"limit": asdict(LIMIT), "seconds": seconds, "rows": rows},
        size=context.size.value,
        seed=context.seed,
    )
    return "; ".join(
        f"{row['pattern']}: worst window {row['worst_window']} "
        f"vs exact {row['exact_worst_window']} (+{row['overshoot_pct']}% of the limit)"
        for row in rows
    )
