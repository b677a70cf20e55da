"""The peer: a FastAPI app limited by the `limits` library, on the same Redis.

It answers the rate limiter's `POST /v1/check` contract shape, so one Locust file
drives both: body `{"rule", "key", "cost"}`, 200 when allowed and 429 when denied,
with `{"allowed", "limit", "rule", "key"}` in a JSON body. Each check is one `hit`:
one round trip to Redis (a Lua script for the moving window, as for ours). The
strategy matches the algorithm it is compared with: `moving-window` (exact, like our
`sliding_log`) or `fixed-window` (like our `fixed_window`). It reports no `remaining`:
`limits` would need a second round trip for it, which would handicap the peer.

Run by `lab bench` with uvicorn: `uvicorn benchmarks.peers.limits_app:create_app
--factory`, configured by `REDIS_URL` (or the servers `lab up` recorded) and
`LIMITS_APP_*` (strategy, rule, limit, period_s, key_prefix).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal, cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
)
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio import ConnectionPool

from labs.settings import ServerUrls

Strategy = Literal["moving-window", "fixed-window"]
_STRATEGIES: dict[str, type[RateLimiter]] = {
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
}


class LimitsAppSettings(BaseSettings):
    """The peer's options (`LIMITS_APP_*`)."""

    model_config = SettingsConfigDict(env_prefix="LIMITS_APP_", extra="ignore", frozen=True)

    strategy: Strategy = "moving-window"
    rule: str = "bench"
    limit: int = Field(default=8, ge=1)
    period_s: int = Field(default=60, ge=1)
    key_prefix: str = "LIMITS"


class CheckBody(BaseModel):
    """Charge `cost` units to `key` under `rule` (the rate limiter's request body)."""

    rule: str
    key: str = Field(min_length=1, max_length=512)
    cost: int = Field(default=1, ge=1)


def create_app(settings: LimitsAppSettings | None = None) -> FastAPI:
    """Build the peer; the Redis URL is discovered like the lab's services do."""
    settings = settings or LimitsAppSettings()
    item: RateLimitItem = RateLimitItemPerSecond(settings.limit, settings.period_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = ServerUrls.discover().require("redis_url")
        pool = ConnectionPool.from_url(url)
        options = cast("dict[str, Any]", {"connection_pool": pool})
        storage = RedisStorage(
            f"async+{url}", implementation="redispy", key_prefix=settings.key_prefix, **options
        )
        app.state.storage = storage
        app.state.limiter = _STRATEGIES[settings.strategy](storage)
        yield
        await pool.aclose()

    app = FastAPI(title="limits-app", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        storage: RedisStorage = request.app.state.storage
        healthy = await storage.check()
        return JSONResponse({"status": "ok" if healthy else "unavailable"}, 200 if healthy else 503)

    @app.post("/v1/check")
    async def check(body: CheckBody, request: Request) -> JSONResponse:
        if body.rule != settings.rule:
            return JSONResponse({"detail": f"no rule is called {body.rule!r}"}, 404)
        limiter: RateLimiter = request.app.state.limiter
        allowed = await limiter.hit(item, body.rule, body.key, cost=body.cost)
        answer = {"allowed": allowed, "limit": settings.limit, "rule": body.rule, "key": body.key}
        return JSONResponse(answer, status_code=200 if allowed else 429)

    return app
