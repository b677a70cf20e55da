"""Backoff schedules: the four formulas of the AWS blog post "Exponential Backoff And Jitter".

Pattern: a `Backoff` (jitter, base, cap) gives each logical call its own iterator of
sleeps, drawn from an injected `random.Random`, so a schedule is reproducible from a
seed and decorrelated jitter can carry the previous sleep. With `ceiling(n) =
min(cap, base * 2**n)` before retry n (n = 1, 2, ...):

| jitter | sleep before retry n |
| --- | --- |
| none | `ceiling(n)` |
| full | `uniform(0, ceiling(n))` |
| equal | `ceiling(n) / 2 + uniform(0, ceiling(n) / 2)` |
| decorrelated | `min(cap, uniform(base, previous * 3))`, previous starting at base |

Guarantee: every sleep is within `[0, cap]` (equal: at least half the ceiling;
decorrelated: at least `base`). Failure it handles: clients that failed together
retrying together (no jitter keeps them in lockstep; jitter spreads them out).

Why not tenacity's waits (decision 0014): `wait_exponential` is the no-jitter row and
`wait_random_exponential` the full-jitter row (the tests check ours against both),
but tenacity draws from the module-level `random` (no injected generator: the
100-client simulation could not give each client its own stream) and has neither
equal nor decorrelated jitter (`wait_exponential_jitter` adds `uniform(0, jitter)`,
a fifth formula).
"""

import random
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum


class Jitter(StrEnum):
    """How a sleep is drawn around the exponential ceiling."""

    NONE = "none"
    FULL = "full"
    EQUAL = "equal"
    DECORRELATED = "decorrelated"


@dataclass(frozen=True)
class Backoff:
    """A capped exponential backoff with one of the four jitters."""

    jitter: Jitter
    base_s: float
    cap_s: float

    def __post_init__(self) -> None:
        """Refuse a schedule that could sleep a negative time or never grow."""
        if self.base_s <= 0 or self.cap_s < self.base_s:
            raise ValueError("backoff needs 0 < base <= cap")

    def ceiling(self, retry: int) -> float:
        """Return `min(cap, base * 2**retry)`: the no-jitter sleep before retry `retry`."""
        exponent = min(retry, 64)  # 2**64 * base is past any cap; no overflow
        return min(self.cap_s, self.base_s * float(2**exponent))

    def delays(self, rng: random.Random) -> Iterator[float]:
        """Yield the sleeps before retry 1, 2, 3, ... of one call (endless)."""
        previous = self.base_s
        retry = 0
        while True:
            retry += 1
            ceiling = self.ceiling(retry)
            match self.jitter:
                case Jitter.NONE:
                    yield ceiling
                case Jitter.FULL:
                    yield rng.uniform(0, ceiling)
                case Jitter.EQUAL:
                    yield ceiling / 2 + rng.uniform(0, ceiling / 2)
                case Jitter.DECORRELATED:
                    previous = min(self.cap_s, rng.uniform(self.base_s, previous * 3))
                    yield previous
