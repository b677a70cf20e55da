"""`lab demo rate-limiter`: exact limits under concurrency, through the real service.

For each exact algorithm, 1000 requests race for a limit of 100 on one key over HTTP,
64 in flight at any moment; the service must admit exactly 100, because each decision is one
atomic script on Redis. The demo also shows what a denied client receives.
"""

import asyncio
import secrets
import uuid
from collections import Counter

import httpx
from pydantic import SecretStr

from labs.demos import DemoContext, DemoFailedError, DemoOutcome
from labs.web.serve import serve_in_thread
from rate_limiter.app import RateLimiterSettings, create_app
from rate_limiter.domain import EXACT_ALGORITHMS

REQUESTS = 1000
LIMIT = 100
IN_FLIGHT = 64
HOUR_MS = 3_600_000


async def _race(client: httpx.AsyncClient, rule: str) -> tuple[Counter[int], httpx.Response]:
    """Send REQUESTS checks for one key, IN_FLIGHT at a time; return status counts and a denial.

    A request that gets no decision (a 5xx or a transport error) fails the demo by name:
    exactness cannot be judged on requests that were not decided.
    """
    body = {"rule": rule, "key": "shared-key"}
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one() -> httpx.Response:
        async with gate:
            return await client.post("/v1/check", json=body)

    answers = await asyncio.gather(*(one() for _ in range(REQUESTS)), return_exceptions=True)
    undecided = Counter(
        type(answer).__name__ if isinstance(answer, BaseException) else str(answer.status_code)
        for answer in answers
        if isinstance(answer, BaseException)
        or answer.status_code not in {httpx.codes.OK, httpx.codes.TOO_MANY_REQUESTS}
    )
    if undecided:
        raise DemoFailedError(f"{rule}: requests got no decision: {dict(undecided)}")
    responses = [answer for answer in answers if isinstance(answer, httpx.Response)]
    denied = next(
        (answer for answer in responses if answer.status_code == httpx.codes.TOO_MANY_REQUESTS),
        None,
    )
    if denied is None:
        raise DemoFailedError(f"{rule}: no request of {REQUESTS} was denied")
    return Counter(answer.status_code for answer in responses), denied


async def run(context: DemoContext) -> DemoOutcome:
    """Race REQUESTS requests against each exact algorithm and count the admitted."""
    token = secrets.token_urlsafe(16)
    settings = RateLimiterSettings(
        admin_token=SecretStr(token), key_prefix=f"rl-demo-{uuid.uuid4().hex[:8]}"
    )
    admitted: dict[str, int] = {}
    with serve_in_thread(create_app(settings, urls=context.urls)) as base_url:
        limits = httpx.Limits(max_connections=IN_FLIGHT)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
            for algorithm in sorted(EXACT_ALGORITHMS):
                context.progress(f"{REQUESTS} concurrent requests, {algorithm} limit {LIMIT}")
                spec = {"algorithm": algorithm, "limit": LIMIT, "period_ms": HOUR_MS}
                await client.put(
                    f"/v1/rules/{algorithm}",
                    json=spec,
                    headers={"Authorization": f"Bearer {token}"},
                )
                counts, denied = await _race(client, algorithm)
                admitted[algorithm] = counts[httpx.codes.OK]
    exact = all(count == LIMIT for count in admitted.values())
    figures = ", ".join(f"{name} {count}" for name, count in admitted.items())
    headers = denied.headers
    shown = f"429 with RateLimit: {headers['RateLimit']}, Retry-After: {headers['Retry-After']}"
    verdict = "exactly" if exact else "NOT exactly"
    summary = f"{REQUESTS} requests per algorithm admitted {verdict} {LIMIT}: {figures}; {shown}"
    return DemoOutcome(proved=exact, summary=summary)
