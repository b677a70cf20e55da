"""The specification: one pure-Python model per algorithm, driven by explicit time.

Pattern: executable specification. Each model keeps one key's state in the object and
decides with integer arithmetic in microseconds; `rate_limiter/lua/limiter.lua` must
return the identical `Decision` for the same sequence of (now_us, cost, peek), which
the property tests check against the real Redis. The failure it handles: an
off-by-one or a rounding drift between "what we meant" and "what Redis does" shows up
as a failing example with its exact times, not as a slightly wrong production limit.

Common rules for every model:
- A check either consumes `cost` units (allowed, not peek) or changes nothing; a
  `peek` returns exactly the Decision the real check would, without storing it.
- `remaining` is the largest cost a further request could be granted right after
  this decision; `reset_after_ms` is until the limiter would be back to full
  capacity with no further requests; `retry_after_ms` is 0 when allowed, else until
  this same cost would be allowed. Durations are rounded up to whole milliseconds.
- A time earlier than the key's state is clamped as each model says (Redis `TIME` can
  step back after a failover, and client clocks in the skew study disagree).
"""

from bisect import bisect_right
from collections.abc import Sequence
from typing import Protocol

from rate_limiter.domain import Algorithm, Decision, Limit, ceil_div, us_to_ms, validate_cost


class Model(Protocol):
    """One key's limiter state and its decision rule."""

    def check(self, now_us: int, cost: int = 1, *, peek: bool = False) -> Decision:
        """Decide whether `cost` units may pass at `now_us`; consume them unless `peek`."""
        ...


class TokenBucketModel:
    """Token bucket: capacity = burst or limit, refilled continuously at limit/period.

    Tokens are kept exactly, fractions included, as integers in units of 1/per_us of a
    token, where limit/period_us = units/per_us in lowest terms: each microsecond adds
    `units`, a token is `per_us`, a full bucket `capacity * per_us`. A new key is full.
    A request is allowed when the bucket holds at least `cost` tokens.
    - remaining: floor(tokens left).
    - reset_after: time to refill the missing tokens.
    - retry_after: time to refill the tokens that `cost` lacks.
    A time earlier than the last stored one refills nothing (and keeps the later time).
    """

    def __init__(self, limit: Limit) -> None:
        """Start with a full bucket for `limit`."""
        self._limit = limit
        self._state: tuple[int, int] | None = None  # (scaled tokens, time in µs)

    def check(self, now_us: int, cost: int = 1, *, peek: bool = False) -> Decision:
        """Refill to `now_us`, then take `cost` tokens if the bucket holds them."""
        validate_cost(self._limit, cost)
        units, per_us = self._limit.rate
        full = self._limit.capacity * per_us
        tokens, since = self._state or (full, now_us)
        tokens = min(full, tokens + max(0, now_us - since) * units)
        need = cost * per_us
        allowed = need <= tokens
        left = tokens - need if allowed else tokens
        if allowed and not peek:
            self._state = (left, max(since, now_us))
        return Decision(
            allowed=allowed,
            limit=self._limit.capacity,
            remaining=left // per_us,
            reset_after_ms=us_to_ms(ceil_div(full - left, units)),
            retry_after_ms=0 if allowed else us_to_ms(ceil_div(need - tokens, units)),
        )


class GcraModel:
    """GCRA (redis-cell, redis_rate): the theoretical arrival time TAT is the state.

    Emission interval T = period/limit, burst tolerance tau = capacity * T. Time is
    counted in ticks of 1/units µs (limit/period_us = units/per_us in lowest terms), so
    T = per_us ticks exactly; TAT is stored as whole µs plus a tick remainder. With
    d = max(0, TAT - now), a request is allowed when d + cost*T <= tau; then
    TAT = now + d + cost*T.
    - remaining: floor((tau - d_after) / T), at least 0.
    - reset_after: d_after (until TAT).
    - retry_after: d + cost*T - tau.
    With time moving forward this decides exactly as the token bucket does (the
    bucket's missing tokens are d / T); a time earlier than TAT simply sees less credit.
    """

    def __init__(self, limit: Limit) -> None:
        """Start with TAT in the past (a full burst available)."""
        self._limit = limit
        self._tat: tuple[int, int] | None = None  # (whole µs, remainder in ticks)

    def check(self, now_us: int, cost: int = 1, *, peek: bool = False) -> Decision:
        """Move TAT by cost*T if it stays within tau of now."""
        validate_cost(self._limit, cost)
        units, per_us = self._limit.rate
        tau = self._limit.capacity * per_us
        tat_us, tat_ticks = self._tat or (now_us, 0)
        ahead = 0 if tat_us < now_us else (tat_us - now_us) * units + tat_ticks
        need = cost * per_us
        allowed = ahead + need <= tau
        after = ahead + need if allowed else ahead
        if allowed and not peek:
            self._tat = (now_us + after // units, after % units)
        return Decision(
            allowed=allowed,
            limit=self._limit.capacity,
            remaining=max(0, (tau - after) // per_us),
            reset_after_ms=us_to_ms(ceil_div(after, units)),
            retry_after_ms=0 if allowed else us_to_ms(ceil_div(ahead + need - tau, units)),
        )


class SlidingLogModel:
    """Sliding log: one timestamp per unit consumed; exact over every window.

    A unit consumed at time s counts at `now` while now - s < period, so at most
    `limit` units are ever granted in any window of `period_ms` ending at now.
    - remaining: limit - units in the window (after this decision).
    - reset_after: until the newest unit leaves the window (0 if none is in it).
    - retry_after: until enough of the oldest units have left for `cost` to fit.
    A time earlier than the newest unit is treated as that unit's time (each key's
    log only grows forward, which also keeps the Redis members unique).
    """

    def __init__(self, limit: Limit) -> None:
        """Start with an empty log."""
        self._limit = limit
        self._log: list[int] = []

    def check(self, now_us: int, cost: int = 1, *, peek: bool = False) -> Decision:
        """Count the units in the window ending now; add `cost` more if they fit."""
        validate_cost(self._limit, cost)
        limit, period = self._limit.limit, self._limit.period_us
        now = max(now_us, self._log[-1]) if self._log else now_us
        start = bisect_right(self._log, now - period)  # the first unit still in the window
        in_window = len(self._log) - start
        allowed = in_window + cost <= limit
        if allowed and not peek:
            del self._log[:start]
            self._log.extend([now] * cost)
        # a denial means units are in the window (cost <= limit), so the log is not empty
        reset_us = period if allowed else self._log[-1] + period - now
        oldest_needed = start + in_window + cost - limit - 1  # must leave before cost fits
        retry_us = 0 if allowed else self._log[oldest_needed] + period - now
        return Decision(
            allowed=allowed,
            limit=limit,
            remaining=limit - in_window - (cost if allowed else 0),
            reset_after_ms=us_to_ms(reset_us),
            retry_after_ms=us_to_ms(retry_us),
        )


class FixedWindowModel:
    """Fixed window: one counter per window floor(now / period).

    - remaining: limit - count in the current window.
    - reset_after: until the window ends (0 if its count is 0).
    - retry_after: until the window ends (the next one starts empty, and cost <= limit).
    A time before the stored window's start is treated as that start.
    """

    def __init__(self, limit: Limit) -> None:
        """Start with no window."""
        self._limit = limit
        self._state: tuple[int, int] | None = None  # (window index, count)

    def check(self, now_us: int, cost: int = 1, *, peek: bool = False) -> Decision:
        """Add `cost` to the current window's count if it stays within the limit."""
        validate_cost(self._limit, cost)
        limit, period = self._limit.limit, self._limit.period_us
        window, count = self._state or (now_us // period, 0)
        now = max(now_us, window * period)
        if now // period != window:
            window, count = now // period, 0
        allowed = count + cost <= limit
        count += cost if allowed else 0
        if allowed and not peek:
            self._state = (window, count)
        to_end = (window + 1) * period - now
        return Decision(
            allowed=allowed,
            limit=limit,
            remaining=limit - count,
            reset_after_ms=us_to_ms(to_end if count else 0),
            retry_after_ms=0 if allowed else us_to_ms(to_end),
        )


class SlidingWindowModel:
    """Sliding window (Cloudflare): two fixed windows, the previous one weighted.

    With `elapsed` = time into the current window, the estimate of the window ending now
    is previous * (period - elapsed) / period + current, kept as an exact fraction. A
    request is allowed when estimate + cost <= limit. An approximation: it assumes the
    previous window's units were spread evenly, so it can over- or under-admit.
    - remaining: limit - current - ceil(previous * (period - elapsed) / period), >= 0.
    - reset_after: to the end of the next window if current > 0, else to the end of
      this one if previous > 0, else 0.
    - retry_after: the earliest time the weighted estimate leaves room for `cost`,
      in this window or (if current + cost > limit) in the next.
    A time before the stored window's start is treated as that start.
    """

    def __init__(self, limit: Limit) -> None:
        """Start with both windows empty."""
        self._limit = limit
        self._state: tuple[int, int, int] | None = None  # (window, current, previous)

    def check(self, now_us: int, cost: int = 1, *, peek: bool = False) -> Decision:
        """Roll the windows to now, then add `cost` if the weighted estimate allows it."""
        validate_cost(self._limit, cost)
        limit, period = self._limit.limit, self._limit.period_us
        window, current, previous = self._state or (now_us // period, 0, 0)
        now = max(now_us, window * period)
        index = now // period
        if index != window:
            previous = current if index == window + 1 else 0
            current = 0
        elapsed = now - index * period
        weighted = previous * (period - elapsed)  # the previous window's share, times period
        room = limit - current - cost
        allowed = room >= 0 and weighted <= room * period
        current += cost if allowed else 0
        if allowed and not peek:
            self._state = (index, current, previous)
        return Decision(
            allowed=allowed,
            limit=limit,
            remaining=max(0, limit - current - ceil_div(weighted, period)),
            reset_after_ms=us_to_ms(_window_reset(period, elapsed, current, previous)),
            retry_after_ms=0
            if allowed
            else us_to_ms(_window_retry(self._limit, elapsed, current, previous, cost)),
        )


def _window_reset(period: int, elapsed: int, current: int, previous: int) -> int:
    """Return µs until both weighted windows are empty."""
    if current:
        return 2 * period - elapsed
    return period - elapsed if previous else 0


def _window_retry(limit: Limit, elapsed: int, current: int, previous: int, cost: int) -> int:
    """Return µs until previous*(period - elapsed)/period + current + cost <= limit."""
    period = limit.period_us
    room = limit.limit - current - cost
    if room >= 0:  # wait in this window until the previous one's share shrinks enough
        return period - elapsed - room * period // previous
    # wait for the next window, where `current` becomes the weighted previous window
    return 2 * period - elapsed - (limit.limit - cost) * period // current


_ModelClass = type[
    TokenBucketModel | GcraModel | SlidingLogModel | FixedWindowModel | SlidingWindowModel
]
_MODELS: dict[Algorithm, _ModelClass] = {
    Algorithm.TOKEN_BUCKET: TokenBucketModel,
    Algorithm.GCRA: GcraModel,
    Algorithm.SLIDING_LOG: SlidingLogModel,
    Algorithm.SLIDING_WINDOW: SlidingWindowModel,
    Algorithm.FIXED_WINDOW: FixedWindowModel,
}


def model_for(limit: Limit) -> Model:
    """Return a fresh, empty state for one key limited by `limit`."""
    return _MODELS[limit.algorithm](limit)


def check_all(
    checks: Sequence[tuple[Model, int]], now_us: int, *, peek: bool = False
) -> list[Decision]:
    """Decide several (model, cost) all-or-nothing, as `RedisLimiter.check_all` does.

    Every check is first decided as a peek; only if all are allowed (and not `peek`)
    does each consume, so a denied check means that none consumed and every Decision
    is the peek's (an allowed one there means it alone would have passed).
    """
    trial = [model.check(now_us, cost, peek=True) for model, cost in checks]
    if peek or not all(decision.allowed for decision in trial):
        return trial
    return [model.check(now_us, cost) for model, cost in checks]
