"""The retry policy's full-jitter bounds and cap, and the attempt cap."""

import random

import pytest

from scheduler.domain import (
    MAX_RETRY_AFTER_MS,
    Job,
    RetryLaterError,
    RetryPolicy,
    is_exhausted,
    retry_delay_ms,
)


def test_ceiling_doubles_from_base_until_the_cap() -> None:
    """Ceiling doubles from base until the cap."""
    policy = RetryPolicy(base_ms=100, cap_ms=1_000)
    assert [policy.ceiling_ms(n) for n in range(1, 7)] == [100, 200, 400, 800, 1_000, 1_000]
    assert policy.ceiling_ms(10_000) == 1_000  # no huge integer, still the cap


def test_full_jitter_spans_zero_to_the_ceiling_and_never_beyond() -> None:
    """Full jitter spans zero to the ceiling and never beyond."""
    policy = RetryPolicy(base_ms=100, cap_ms=1_000)
    rng = random.Random(7)
    for attempt in range(1, 12):
        delays = [policy.delay_ms(attempt, rng) for _ in range(2_000)]
        ceiling = policy.ceiling_ms(attempt)
        assert min(delays) >= 0
        assert max(delays) <= ceiling
        # Full jitter: the draws cover the whole range, not just its top.
        assert min(delays) < ceiling * 0.05
        assert max(delays) > ceiling * 0.95


def test_the_same_seed_gives_the_same_delays() -> None:
    """The same seed gives the same delays."""
    policy = RetryPolicy()
    first = [policy.delay_ms(n, random.Random(1)) for n in range(1, 6)]
    assert first == [policy.delay_ms(n, random.Random(1)) for n in range(1, 6)]


def test_a_zero_base_never_waits() -> None:
    """A zero base never waits."""
    assert RetryPolicy(base_ms=0, cap_ms=0).delay_ms(50, random.Random(0)) == 0


@pytest.mark.parametrize(("base", "cap"), [(-1, 10), (10, 5)])
def test_invalid_policies_are_refused(base: int, cap: int) -> None:
    """Invalid policies are refused."""
    with pytest.raises(ValueError, match="base_ms"):
        RetryPolicy(base_ms=base, cap_ms=cap)


def test_attempts_are_counted_from_one() -> None:
    """Attempts are counted from one."""
    with pytest.raises(ValueError, match="from 1"):
        RetryPolicy().ceiling_ms(0)


def test_a_job_is_exhausted_once_it_used_max_attempts() -> None:
    """A job is exhausted once it used max attempts."""
    assert not is_exhausted(4, 5)
    assert is_exhausted(5, 5)
    assert Job(id="j", type="noop", attempts=5).exhausted
    assert not Job(id="j", type="noop", attempts=1, max_attempts=2).exhausted


@pytest.mark.parametrize(
    "changes", [{"priority": 10}, {"priority": -1}, {"max_attempts": 0}, {"type": ""}]
)
def test_invalid_jobs_are_refused(changes: dict[str, int | str]) -> None:
    """Invalid jobs are refused."""
    fields: dict[str, int | str] = {"id": "j", "type": "noop"}
    fields |= changes
    with pytest.raises(ValueError, match=r"priority|attempts|type"):
        Job(**fields)  # type: ignore[arg-type]


def test_a_retry_waits_the_longer_of_the_backoff_and_the_downstreams_ask() -> None:
    """Retry-After lengthens a short backoff, never shortens a long one, and is bounded."""
    assert retry_delay_ms(500, RetryLaterError("429", after_ms=30_000)) == 30_000
    assert retry_delay_ms(45_000, RetryLaterError("429", after_ms=30_000)) == 45_000
    assert retry_delay_ms(500, RetryLaterError("503", after_ms=None)) == 500
    assert retry_delay_ms(500, RetryLaterError("429", after_ms=10**9)) == MAX_RETRY_AFTER_MS
    assert retry_delay_ms(500, ValueError("boom")) == 500
