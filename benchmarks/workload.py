"""The benchmark workload: which key each request charges, and what the answer must be.

Every client (a Locust user, an in-process worker) owns a small pool of keys drawn
from a seeded random stream. Each request picks one of its keys at random; a key gets
exactly `requests_per_key` requests and is then replaced by a fresh one. With a limit
of `limit` per `period_s` (longer than a key's life), an exact limiter admits the
first `limit` requests of every key and denies the rest, so the admitted share is
known in advance (`limit / requests_per_key`) whatever the throughput, and every
single answer can be predicted: allowed exactly when it is among the first `limit`.
Keys are never shared between clients, so no prediction depends on timing.
"""

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    """The limit under test and how the requests spread over keys."""

    limit: int = 8
    period_s: int = 60
    requests_per_key: int = 10
    pool: int = 8

    @property
    def admitted_share(self) -> float:
        """Return the fraction of requests an exact limiter admits."""
        return min(self.limit, self.requests_per_key) / self.requests_per_key


@dataclass(frozen=True)
class Step:
    """One request: its key, its place in the key's sequence, and the exact answer."""

    key: str
    nth: int
    limit: int

    @property
    def allowed(self) -> bool:
        """Return whether an exact limiter admits this request."""
        return self.nth <= self.limit

    @property
    def remaining(self) -> int:
        """Return the units left after this request, as an exact limiter reports them."""
        return max(0, self.limit - self.nth)


class KeyStream:
    """The keys of one client, drawn from a random stream seeded by `seed`."""

    def __init__(self, namespace: str, seed: str, shape: Shape) -> None:
        """Draw keys named `<namespace>-<token>`; the same seed draws the same keys."""
        self._namespace = namespace
        self._rng = random.Random(seed)
        self._shape = shape
        self._pool: list[tuple[str, int]] = [(self._fresh(), 0) for _ in range(shape.pool)]

    def _fresh(self) -> str:
        return f"{self._namespace}-{self._rng.getrandbits(48):012x}"

    def next(self) -> Step:
        """Return the next request; a key that has had all its requests is replaced."""
        slot = self._rng.randrange(len(self._pool))
        key, sent = self._pool[slot]
        sent += 1
        done = sent >= self._shape.requests_per_key
        self._pool[slot] = (self._fresh(), 0) if done else (key, sent)
        return Step(key, sent, self._shape.limit)

    def retire(self, key: str) -> None:
        """Replace `key`: a request on it failed, so its count is no longer known."""
        self._pool = [(self._fresh(), 0) if k == key else (k, n) for k, n in self._pool]
