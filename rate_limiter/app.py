"""Wiring for the rate-limit service: settings, clients and the engine, built in the lifespan.

Nothing connects at import. The Redis client used for decisions has short timeouts
and no retries of its own: when Redis is slow or gone, the rule's fail mode answers
within the timeout instead of stalling the caller.
"""

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import Counter
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from labs.clients import redis_client
from labs.clock import Clock, SystemClock
from labs.keys import KeyBuilder
from labs.settings import ServerUrls, ServiceSettings
from labs.tasks import background
from labs.web import create_service_app, register_health_check
from rate_limiter.api import router
from rate_limiter.engine import Engine, Verdict
from rate_limiter.fallback import LocalLimiter, RedisOutage
from rate_limiter.rule_book import RuleBook, read_rules_file
from rate_limiter.store import RedisLimiter


class RateLimiterSettings(ServiceSettings):
    """Options of the rate-limit service (`RATE_LIMITER_*`)."""

    model_config = SettingsConfigDict(env_prefix="RATE_LIMITER_", extra="ignore", frozen=True)

    port: int = 8101
    key_prefix: str = "rl"
    rules_file: Path | None = None
    redis_timeout_ms: int = Field(default=250, ge=1, description="Per-call Redis timeout.")
    outage_window_ms: int = Field(
        default=500, ge=0, description="Skip Redis this long after a failure."
    )
    local_max_keys: int = Field(default=100_000, ge=1)
    rules_refresh_ms: int = Field(default=1_000, ge=10)


def _decision_counter(app: FastAPI) -> Counter:
    return Counter(
        "rate_limiter_decisions",
        "Rate-limit decisions",
        ["rule", "result", "decided_by"],
        registry=app.state.metrics_registry,
    )


def create_app(
    settings: RateLimiterSettings | None = None,
    urls: ServerUrls | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the rate-limit service; server URLs are discovered when not given."""
    settings = settings or RateLimiterSettings()
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis_url = (urls or ServerUrls.discover()).require("redis_url")
        timeout = settings.redis_timeout_ms / 1000
        redis = redis_client(
            redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        keys = KeyBuilder(settings.key_prefix)
        rules = RuleBook(redis, keys)
        await rules.start(read_rules_file(settings.rules_file) if settings.rules_file else [])
        app.state.rules = rules
        app.state.engine = Engine(
            RedisLimiter(redis, keys),
            rules,
            LocalLimiter(clock, settings.local_max_keys),
            RedisOutage(clock, settings.outage_window_ms / 1000),
            observe=_observer(decisions),
        )
        register_health_check(app, "redis", redis.ping)
        async with background(rules.keep_fresh(clock, settings.rules_refresh_ms / 1000)):
            yield
        await redis.aclose()

    app = create_service_app("rate-limiter", settings, lifespan=lifespan, routers=[router])
    decisions = _decision_counter(app)
    return app


def _observer(counter: Counter) -> Callable[[Sequence[Verdict]], None]:
    def observe(verdicts: Sequence[Verdict]) -> None:
        for verdict in verdicts:
            result = "allowed" if verdict.decision.allowed else "denied"
            counter.labels(verdict.rule.name, result, verdict.decided_by).inc()

    return observe
