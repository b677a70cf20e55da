"""The four AWS backoff formulas: bounds, growth, reproducibility, and tenacity as a reference."""

import itertools
import random

import pytest
import tenacity
from hypothesis import given
from hypothesis import strategies as st

from labs.failsim.policies import Backoff, Jitter

BASE, CAP = 0.005, 2.0


def _sleeps(jitter: Jitter, seed: int, count: int = 30) -> list[float]:
    return list(itertools.islice(Backoff(jitter, BASE, CAP).delays(random.Random(seed)), count))


def _retry_state(attempt: int) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(tenacity.AsyncRetrying(), None, (), {})
    state.attempt_number = attempt
    return state


def test_no_jitter_is_tenacitys_wait_exponential() -> None:
    """No jitter doubles from 2*base to the cap, exactly as tenacity's wait_exponential."""
    reference = tenacity.wait_exponential(multiplier=2 * BASE, max=CAP)
    expected = [reference(_retry_state(n)) for n in range(1, 31)]
    assert _sleeps(Jitter.NONE, seed=1) == pytest.approx(expected)
    assert _sleeps(Jitter.NONE, seed=1)[:3] == pytest.approx([0.01, 0.02, 0.04])


def test_full_jitter_draws_what_tenacitys_wait_random_exponential_draws() -> None:
    """Seeded alike, full jitter and tenacity's wait_random_exponential draw the same sleeps."""
    reference = tenacity.wait_random_exponential(multiplier=2 * BASE, max=CAP)
    saved = random.getstate()
    try:
        random.seed(42)  # tenacity draws from the module-level generator
        expected = [reference(_retry_state(n)) for n in range(1, 31)]
    finally:
        random.setstate(saved)
    assert _sleeps(Jitter.FULL, seed=42) == pytest.approx(expected)


@given(seed=st.integers(0, 2**32))
def test_each_formula_stays_within_its_bounds(seed: int) -> None:
    """Full in [0, ceiling], equal in [ceiling/2, ceiling], decorrelated in [base, cap]."""
    backoff = Backoff(Jitter.NONE, BASE, CAP)
    ceilings = [backoff.ceiling(n) for n in range(1, 31)]
    for sleep, ceiling in zip(_sleeps(Jitter.FULL, seed), ceilings, strict=True):
        assert 0 <= sleep <= ceiling
    for sleep, ceiling in zip(_sleeps(Jitter.EQUAL, seed), ceilings, strict=True):
        assert ceiling / 2 <= sleep <= ceiling
    previous = BASE
    for sleep in _sleeps(Jitter.DECORRELATED, seed):
        assert BASE <= sleep <= min(CAP, 3 * previous)
        previous = sleep


def test_the_ceiling_is_capped_without_overflow() -> None:
    """Retry 10,000 sleeps the cap, not an overflow."""
    assert Backoff(Jitter.NONE, BASE, CAP).ceiling(10_000) == CAP


def test_a_seed_fixes_the_schedule_and_clients_differ_by_seed() -> None:
    """One seed gives one schedule; two clients' jittered schedules differ."""
    assert _sleeps(Jitter.DECORRELATED, 3) == _sleeps(Jitter.DECORRELATED, 3)
    assert _sleeps(Jitter.DECORRELATED, 3) != _sleeps(Jitter.DECORRELATED, 4)


def test_invalid_schedules_are_refused() -> None:
    """A zero base or a cap under the base is refused at construction."""
    with pytest.raises(ValueError, match="base"):
        Backoff(Jitter.FULL, 0, 1)
    with pytest.raises(ValueError, match="base"):
        Backoff(Jitter.FULL, 2, 1)
