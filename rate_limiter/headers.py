"""RateLimit headers as in the IETF httpapi draft "RateLimit header fields for HTTP".

`RateLimit-Policy: "api";q=100;w=60` states the quota (q units per window of w
seconds); `RateLimit: "api";r=42;t=17` the remaining units and the seconds until the
quota is fully available again. A denied request also gets `Retry-After` (seconds,
never 0, rounded up so a client that obeys it is not denied again for rounding).
"""

import math

from rate_limiter.domain import Decision
from rate_limiter.rules import Rule


def _seconds(milliseconds: int) -> int:
    return math.ceil(milliseconds / 1000)


def rate_limit_headers(rule: Rule, key: str, decision: Decision) -> dict[str, str]:
    """Return the policy and state headers for one decision."""
    limit = rule.limit_for(key)
    return {
        "RateLimit-Policy": f'"{rule.name}";q={limit.limit};w={max(1, _seconds(limit.period_ms))}',
        "RateLimit": f'"{rule.name}";r={decision.remaining};t={_seconds(decision.reset_after_ms)}',
    }


def retry_after(decisions: list[Decision]) -> dict[str, str]:
    """Return `Retry-After` for the longest wait among denied decisions (none if all allowed)."""
    waits = [decision.retry_after_ms for decision in decisions if not decision.allowed]
    return {"Retry-After": str(max(1, _seconds(max(waits))))} if waits else {}
