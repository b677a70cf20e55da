"""The algorithm models, the limiter's specification, driven by explicit times."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rate_limiter.domain import EXACT_ALGORITHMS, Algorithm, CostTooHigh, Decision, Limit
from rate_limiter.models import check_all, model_for

# hypothesis caches source constants on disk even with database=None: not in the repo
T0 = 1_700_000_000_000_000  # a realistic Redis TIME in µs, on a whole second
MS = 1_000
SECOND = 1_000_000
PROPERTIES = settings(max_examples=60, deadline=None, derandomize=True, database=None)


def allowed(limit: int, remaining: int, reset: int) -> Decision:
    """Return an allowing Decision."""
    return Decision(
        allowed=True, limit=limit, remaining=remaining, reset_after_ms=reset, retry_after_ms=0
    )


def denied(limit: int, remaining: int, reset: int, retry: int) -> Decision:
    """Return a denying Decision."""
    return Decision(
        allowed=False, limit=limit, remaining=remaining, reset_after_ms=reset, retry_after_ms=retry
    )


@pytest.mark.parametrize(
    ("algorithm", "limit", "period_ms", "burst", "message"),
    [
        (Algorithm.TOKEN_BUCKET, 0, 1000, None, "limit must be at least 1"),
        (Algorithm.GCRA, 1, 0, None, "period_ms must be"),
        (Algorithm.FIXED_WINDOW, 1, 367 * 86_400_000, None, "period_ms must be"),
        (Algorithm.SLIDING_LOG, 5, 1000, 10, "burst applies to token_bucket and gcra only"),
        (Algorithm.TOKEN_BUCKET, 5, 1000, 0, "burst must be at least 1"),
        (Algorithm.TOKEN_BUCKET, 999_983, 86_400_000, None, "needs integers above 2\\*\\*52"),
        (Algorithm.SLIDING_WINDOW, 100_000, 86_400_000, None, "needs integers above 2\\*\\*52"),
    ],
)
def test_invalid_limits_are_refused(
    algorithm: Algorithm, limit: int, period_ms: int, burst: int | None, message: str
) -> None:
    """A limit no algorithm can run exactly fails at construction, saying why."""
    with pytest.raises(ValueError, match=message):
        Limit(algorithm, limit, period_ms, burst)


def test_capacity_is_the_burst_or_the_limit() -> None:
    """Capacity defaults to the limit; a burst replaces it for the bucket algorithms."""
    assert Limit(Algorithm.GCRA, 10, 1000).capacity == 10
    assert Limit(Algorithm.TOKEN_BUCKET, 10, 1000, burst=25).capacity == 25
    assert Limit(Algorithm.TOKEN_BUCKET, 1_000_000, 86_400_000).rate == (1, 86_400)


def test_only_the_sliding_window_is_inexact() -> None:
    """Every algorithm but the sliding window approximation is exact."""
    assert set(Algorithm) - EXACT_ALGORITHMS == {Algorithm.SLIDING_WINDOW}


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_a_cost_above_capacity_or_below_one_is_refused(algorithm: Algorithm) -> None:
    """A cost that could never pass raises CostTooHigh; a cost below 1 is a ValueError."""
    model = model_for(Limit(algorithm, 5, 1000))
    with pytest.raises(CostTooHigh, match="exceeds the capacity 5"):
        model.check(T0, 6)
    with pytest.raises(ValueError, match="at least 1"):
        model.check(T0, 0)
    assert model.check(T0, 5).allowed


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_peek_returns_the_real_decision_and_consumes_nothing(algorithm: Algorithm) -> None:
    """A peek answers what the check would, and the next check still sees a fresh key."""
    limit = Limit(algorithm, 3, 1000)
    model = model_for(limit)
    peeked = [model.check(T0, 2, peek=True) for _ in range(3)]
    assert peeked == [model_for(limit).check(T0, 2)] * 3
    assert model.check(T0, 2) == peeked[0]


def test_token_bucket_bursts_then_refills_continuously() -> None:
    """A burst of 3 empties the bucket; a third of a period later one token is back."""
    model = model_for(Limit(Algorithm.TOKEN_BUCKET, 3, 1000))
    assert model.check(T0, 3) == allowed(3, 0, 1000)
    assert model.check(T0 + 100 * MS) == denied(3, 0, 900, 234)
    assert model.check(T0 + 334 * MS) == allowed(3, 0, 1000)  # 999.33 ms, rounded up


def test_token_bucket_keeps_fractional_tokens() -> None:
    """Half a token refilled twice makes one whole token: fractions are never dropped."""
    model = model_for(Limit(Algorithm.TOKEN_BUCKET, 2, 1000))
    model.check(T0, 2)
    assert not model.check(T0 + 250 * MS).allowed  # half a token: denied, nothing stored
    assert model.check(T0 + 500 * MS) == allowed(2, 0, 1000)


def test_token_bucket_burst_above_the_rate() -> None:
    """A burst of 10 at a rate of 1 per second: 10 at once, then one per second."""
    model = model_for(Limit(Algorithm.TOKEN_BUCKET, 1, 1000, burst=10))
    assert model.check(T0, 10) == allowed(10, 0, 10_000)
    assert model.check(T0 + 999 * MS) == denied(10, 0, 9_001, 1)
    assert model.check(T0 + SECOND) == allowed(10, 0, 10_000)


def test_gcra_tracks_a_fractional_emission_interval_exactly() -> None:
    """T = 333,333.33 µs: after a burst of 3, one T of credit is back at 333,334 µs, not before."""
    model = model_for(Limit(Algorithm.GCRA, 3, 1000))
    assert model.check(T0, 3) == allowed(3, 0, 1000)
    assert model.check(T0 + 333_333) == denied(3, 0, 667, 1)
    assert model.check(T0 + 333_334) == allowed(3, 0, 1000)
    assert model.check(T0 + SECOND + 333_334, 3).allowed


def test_sliding_log_is_exact_over_every_window() -> None:
    """A unit counts for exactly one period: 1 µs before it leaves, cost 1 is still denied."""
    model = model_for(Limit(Algorithm.SLIDING_LOG, 3, 1000))
    model.check(T0, 2)
    model.check(T0 + 400 * MS)
    assert model.check(T0 + SECOND - 1) == denied(3, 0, 401, 1)
    assert model.check(T0 + SECOND) == allowed(3, 1, 1000)


def test_sliding_log_cost_waits_for_enough_old_units() -> None:
    """Cost 2 with 3 units logged must wait until the second-oldest has left."""
    model = model_for(Limit(Algorithm.SLIDING_LOG, 3, 1000))
    for offset in (0, 100, 200):
        model.check(T0 + offset * MS)
    assert model.check(T0 + 500 * MS, 2) == denied(3, 0, 700, 600)
    assert not model.check(T0 + 1099 * MS, 2).allowed
    assert model.check(T0 + 1100 * MS, 2) == allowed(3, 0, 1000)


def test_fixed_window_resets_at_the_boundary() -> None:
    """The counter belongs to floor(now / period): twice the limit can pass around a boundary."""
    model = model_for(Limit(Algorithm.FIXED_WINDOW, 3, 1000))
    assert model.check(T0 + 900 * MS, 3) == allowed(3, 0, 100)
    assert model.check(T0 + 999 * MS) == denied(3, 0, 1, 1)
    assert model.check(T0 + SECOND, 3) == allowed(3, 0, 1000)


def test_sliding_window_weights_the_previous_window() -> None:
    """Cloudflare's estimate: 4 previous units at 25% into the window weigh 3."""
    model = model_for(Limit(Algorithm.SLIDING_WINDOW, 4, 1000))
    model.check(T0, 4)
    assert model.check(T0 + 1250 * MS) == allowed(4, 0, 1750)
    assert model.check(T0 + 1250 * MS) == denied(4, 0, 1750, 250)
    assert model.check(T0 + 1500 * MS).allowed


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_a_time_going_back_never_grants_more(algorithm: Algorithm) -> None:
    """After a step back in time the key still denies what it denied at the later time."""
    model = model_for(Limit(algorithm, 2, 1000))
    model.check(T0 + 500 * MS, 2)
    assert not model.check(T0 + 500 * MS).allowed
    assert not model.check(T0 - 10 * SECOND).allowed


def test_check_all_consumes_nothing_unless_every_check_passes() -> None:
    """One denied check leaves the others untouched; all allowed consumes in each."""
    roomy = model_for(Limit(Algorithm.TOKEN_BUCKET, 10, 1000))
    tight = model_for(Limit(Algorithm.FIXED_WINDOW, 1, 1000))
    assert [d.allowed for d in check_all([(roomy, 5), (tight, 1)], T0)] == [True, True]
    assert [d.allowed for d in check_all([(roomy, 5), (tight, 1)], T0)] == [True, False]
    assert roomy.check(T0, 5).allowed  # the denied batch took nothing from the bucket


limits = st.builds(
    Limit,
    algorithm=st.sampled_from(list(Algorithm)),
    limit=st.integers(1, 12),
    period_ms=st.sampled_from([1, 7, 250, 1000, 60_000]),
)
steps = st.lists(st.tuples(st.integers(0, 2_000_000), st.integers(1, 12)), max_size=25)


@PROPERTIES
@given(limit=limits, history=steps, wait=st.integers(0, 2_000_000))
def test_retry_after_and_reset_after_are_honest(
    limit: Limit, history: list[tuple[int, int]], wait: int
) -> None:
    """After any history: a denied cost passes at retry_after; at reset_after all is back."""
    model, now = model_for(limit), T0
    for delta, cost in history:
        now += delta
        model.check(now, min(cost, limit.capacity))
    now += wait
    probe = model.check(now, limit.capacity, peek=True)
    if not probe.allowed:
        assert model.check(now + probe.retry_after_ms * MS, limit.capacity, peek=True).allowed
    full = model.check(now + probe.reset_after_ms * MS, 1, peek=True)
    assert full.remaining == limit.capacity - 1


@PROPERTIES
@given(
    limit=st.integers(1, 12),
    period_ms=st.sampled_from([1, 7, 1000]),
    burst=st.none() | st.integers(1, 20),
    history=st.lists(st.tuples(st.integers(0, 1_500_000), st.integers(1, 20), st.booleans())),
)
def test_gcra_decides_exactly_as_the_token_bucket(
    limit: int, period_ms: int, burst: int | None, history: list[tuple[int, int, bool]]
) -> None:
    """With time moving forward, GCRA and the token bucket are one algorithm, two states."""
    bucket = model_for(Limit(Algorithm.TOKEN_BUCKET, limit, period_ms, burst))
    gcra = model_for(Limit(Algorithm.GCRA, limit, period_ms, burst))
    now = T0
    for delta, wanted, peek in history:
        now += delta
        cost = min(wanted, burst or limit)
        assert bucket.check(now, cost, peek=peek) == gcra.check(now, cost, peek=peek)
