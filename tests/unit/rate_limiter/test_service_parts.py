"""The service's own logic: rules, hash tags, headers, the outage window and the local limiter."""

import pytest
from pydantic import ValidationError

from labs.clock import ManualClock
from rate_limiter.domain import Algorithm, Decision, Limit
from rate_limiter.engine import hash_tag
from rate_limiter.fallback import LocalLimiter, RedisOutage
from rate_limiter.headers import rate_limit_headers, retry_after
from rate_limiter.rules import LimitSpec, Rule, RuleSpec


def rule(**fields: object) -> Rule:
    """A token-bucket rule of 10 per second unless told otherwise."""
    spec = {"algorithm": "token_bucket", "limit": 10, "period_ms": 1000} | fields
    return Rule.named("api", RuleSpec.model_validate(spec))


@pytest.mark.parametrize(
    ("key", "tag"),
    [
        ("user-1", "user-1"),
        ("{tenant-7}:user-3", "tenant-7"),
        ("a{b}c{d}", "b"),
        ("{}x", "{}x"),
        ("x{", "x{"),
    ],
)
def test_hash_tag_follows_redis_cluster(key: str, tag: str) -> None:
    """The first non-empty {...} is the tag; otherwise the whole key, as Redis Cluster does."""
    assert hash_tag(key) == tag


def test_an_override_gives_one_key_its_own_limit() -> None:
    """A tenant with an override gets its limit; everyone else the rule's."""
    tenant_rule = rule(overrides={"{big}": {"limit": 500, "period_ms": 1000}})
    assert tenant_rule.limit_for("{big}") == Limit(Algorithm.TOKEN_BUCKET, 500, 1000)
    assert tenant_rule.limit_for("{small}") == Limit(Algorithm.TOKEN_BUCKET, 10, 1000)


@pytest.mark.parametrize(
    "fields",
    [
        {"algorithm": "sliding_log", "burst": 5},
        {"limit": 0},
        {"period_ms": 0},
        {"algorithm": "leaky"},
        {"fail_mode": "sometimes"},
        {"surprise": True},
        {"overrides": {"k": {"limit": -1, "period_ms": 1000}}},
    ],
)
def test_invalid_rules_are_refused_when_written(fields: dict[str, object]) -> None:
    """A rule that could not run is rejected at validation, never at check time."""
    with pytest.raises(ValidationError):
        rule(**fields)


def test_headers_follow_the_ietf_draft() -> None:
    """RateLimit-Policy gives quota and window in seconds; RateLimit remaining and reset."""
    decision = Decision(allowed=True, limit=10, remaining=7, reset_after_ms=300, retry_after_ms=0)
    assert rate_limit_headers(rule(period_ms=60_000), "k", decision) == {
        "RateLimit-Policy": '"api";q=10;w=60',
        "RateLimit": '"api";r=7;t=1',
    }


def test_retry_after_rounds_up_and_is_never_zero() -> None:
    """The longest denied wait, in whole seconds rounded up; absent when nothing was denied."""
    denied = [
        Decision(allowed=False, limit=1, remaining=0, reset_after_ms=9, retry_after_ms=ms)
        for ms in (1, 1500)
    ]
    assert retry_after(denied) == {"Retry-After": "2"}
    assert retry_after([denied[0]]) == {"Retry-After": "1"}
    assert (
        retry_after(
            [Decision(allowed=True, limit=1, remaining=0, reset_after_ms=0, retry_after_ms=0)]
        )
        == {}
    )


def test_outage_window_skips_redis_then_lets_it_be_tried_again() -> None:
    """After a failure Redis is skipped for the window, and tried again once it passes."""
    clock = ManualClock()
    outage = RedisOutage(clock, window_s=0.5)
    assert outage.redis_usable()
    outage.failed()
    assert not outage.redis_usable()
    assert outage.retry_after_ms == 500
    clock.advance(0.5)
    assert outage.redis_usable()


def test_local_limiter_is_all_or_nothing() -> None:
    """When one check of a batch is denied, none of the batch consumes."""
    local = LocalLimiter(ManualClock(), max_keys=10)
    tight = Limit(Algorithm.FIXED_WINDOW, 1, 60_000)
    loose = Limit(Algorithm.FIXED_WINDOW, 5, 60_000)
    assert [d.allowed for d in local.check_all([("a", loose, 1), ("b", tight, 1)])] == [True, True]
    assert [d.allowed for d in local.check_all([("a", loose, 1), ("b", tight, 1)])] == [True, False]
    (after,) = local.check_all([("a", loose, 1)], peek=True)
    assert after.remaining == 3  # 5 - 1 (first batch) - 1 (this peek's cost), not - 2


def test_local_limiter_forgets_the_least_recently_used_keys_beyond_its_bound() -> None:
    """A flood of distinct keys during an outage cannot grow memory past max_keys."""
    local = LocalLimiter(ManualClock(), max_keys=3)
    limit = Limit(Algorithm.FIXED_WINDOW, 1, 60_000)
    for key in ("a", "b", "c", "d"):
        local.check_all([(key, limit, 1)])
    assert len(local) == 3
    (again,) = local.check_all([("a", limit, 1)])
    assert again.allowed  # "a" was evicted, so it starts afresh


def test_limit_spec_numbers_are_bounded() -> None:
    """Absurd numbers are rejected before they reach any algorithm."""
    with pytest.raises(ValidationError):
        LimitSpec(limit=10**12, period_ms=1000)
