"""The limiter as a library: limit your own FastAPI routes with the same algorithms.

Two ways in, both deciding through the same `Engine` (one Lua script on Redis server
time, the rule's fail mode when Redis is away):
- `RateLimit(rule, key=...)`, a dependency for one route; it sets the RateLimit
  headers on the response and answers 429 problem+json when denied;
- `RateLimitMiddleware`, pure ASGI, for every request of an app, with exempt paths.
Both find the engine at `app.state.rate_limiter`, built in the app's lifespan with
`build_engine` (nothing connects at import), and never block the event loop: each
decision is one awaited round trip.
"""

from collections.abc import Callable, Iterable

from fastapi import Request, Response
from redis.asyncio import Redis, RedisCluster
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labs.clock import Clock, SystemClock
from labs.keys import KeyBuilder
from labs.web.problems import ProblemError, problem_response
from rate_limiter.engine import CheckRequest, Engine, FixedRules, Verdict
from rate_limiter.fallback import LocalLimiter, RedisOutage
from rate_limiter.headers import rate_limit_headers, retry_after
from rate_limiter.rules import Rule
from rate_limiter.store import RedisLimiter

KeyFunction = Callable[[Request], str]


def build_engine(
    redis: Redis | RedisCluster,
    rules: Iterable[Rule],
    *,
    prefix: str = "rl-app",
    clock: Clock | None = None,
    local_max_keys: int = 10_000,
    outage_window_s: float = 0.5,
) -> Engine:
    """Return an engine for an app's own `rules`, keeping state in `redis` under `prefix`."""
    clock = clock or SystemClock()
    return Engine(
        RedisLimiter(redis, KeyBuilder(prefix)),
        FixedRules(rules),
        LocalLimiter(clock, local_max_keys),
        RedisOutage(clock, outage_window_s),
    )


def client_address(request: Request) -> str:
    """Key requests by the client's address (behind a proxy, key by what the proxy vouches for)."""
    return request.client.host if request.client else "unknown"


def _headers(verdict: Verdict) -> dict[str, str]:
    headers = rate_limit_headers(verdict.rule, verdict.key, verdict.decision)
    return headers if verdict.allowed else headers | retry_after([verdict.decision])


def _denied(verdict: Verdict) -> ProblemError:
    return ProblemError(
        429,
        "Too Many Requests",
        f"rule {verdict.rule.name!r} allows no more right now",
        headers=_headers(verdict),
        retry_after_ms=verdict.decision.retry_after_ms,
    )


class RateLimit:
    """A route dependency: `Depends(RateLimit("search", key=by_user))`."""

    def __init__(self, rule: str, key: KeyFunction = client_address, cost: int = 1) -> None:
        """Charge `cost` units of `rule` to the key `key(request)` returns."""
        self.rule = rule
        self.key = key
        self.cost = cost

    async def __call__(self, request: Request, response: Response) -> Verdict:
        """Decide; set the headers when allowed, raise a 429 problem when denied."""
        engine: Engine = request.app.state.rate_limiter
        verdict = await engine.check(CheckRequest(self.rule, self.key(request), self.cost))
        if not verdict.allowed:
            raise _denied(verdict)
        response.headers.update(_headers(verdict))
        return verdict


class RateLimitMiddleware:
    """Limits every HTTP request of an app under one rule, except `exempt` paths."""

    def __init__(
        self,
        app: ASGIApp,
        rule: str,
        key: KeyFunction = client_address,
        exempt: Iterable[str] = ("/healthz", "/metrics"),
    ) -> None:
        """Wrap `app`."""
        self.app = app
        self.rule = rule
        self.key = key
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Decide before the app runs; answer 429 problem+json without calling it when denied."""
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        engine: Engine = request.app.state.rate_limiter
        verdict = await engine.check(CheckRequest(self.rule, self.key(request)))
        if not verdict.allowed:
            await problem_response(_denied(verdict), scope["path"])(scope, receive, send)
            return
        headers = [
            (name.lower().encode(), value.encode()) for name, value in _headers(verdict).items()
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)
