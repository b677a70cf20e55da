"""The limiter as a library: an app limits its own routes with a dependency or middleware."""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import Depends, FastAPI

from labs.clients import redis_client
from labs.keys import KeyBuilder
from labs.settings import ServerUrls, ServiceSettings
from labs.web import create_service_app
from labs.web.serve import serve_in_thread
from rate_limiter.middleware import RateLimit, RateLimitMiddleware, build_engine
from rate_limiter.rules import Rule, RuleSpec

RULES = [
    Rule.named(
        "search",
        RuleSpec.model_validate({"algorithm": "sliding_log", "limit": 2, "period_ms": 60_000}),
    ),
    Rule.named(
        "global", RuleSpec.model_validate({"algorithm": "gcra", "limit": 3, "period_ms": 60_000})
    ),
]


def build_app(lab_urls: ServerUrls, keys: KeyBuilder, *, middleware: bool) -> FastAPI:
    """An app whose /search is limited by the dependency, or everything by the middleware."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = redis_client(lab_urls.require("redis_url"))
        app.state.rate_limiter = build_engine(redis, RULES, prefix=keys.prefix)
        yield
        await redis.aclose()

    app = create_service_app("my-app", ServiceSettings(), lifespan=lifespan)

    @app.get(
        "/search",
        dependencies=[]
        if middleware
        else [Depends(RateLimit("search", key=lambda r: r.query_params["user"]))],
    )
    async def search(user: str) -> dict[str, str]:
        return {"results_for": user}

    if middleware:
        app.add_middleware(RateLimitMiddleware, rule="global")
    return app


@pytest.fixture
def dependency_app(lab_urls: ServerUrls, keys: KeyBuilder) -> Iterator[httpx.Client]:
    """An app limiting one route per user with the dependency."""
    with (
        serve_in_thread(build_app(lab_urls, keys, middleware=False)) as url,
        httpx.Client(base_url=url) as client,
    ):
        yield client


def test_dependency_limits_one_route_per_key_and_sets_headers(dependency_app: httpx.Client) -> None:
    """Each user gets two searches a minute; the third is a 429 problem with Retry-After."""
    alice = [dependency_app.get("/search", params={"user": "alice"}) for _ in range(3)]
    bob = dependency_app.get("/search", params={"user": "bob"})
    assert [a.status_code for a in alice] == [200, 200, 429]
    assert alice[0].headers["RateLimit"] == '"search";r=1;t=60'
    assert alice[2].headers["content-type"] == "application/problem+json"
    assert int(alice[2].headers["Retry-After"]) >= 1
    assert bob.status_code == 200


def test_middleware_limits_every_request_but_exempt_paths(
    lab_urls: ServerUrls, keys: KeyBuilder
) -> None:
    """Three requests a minute for the whole app; /healthz stays reachable when limited."""
    app = build_app(lab_urls, keys, middleware=True)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        codes = [client.get("/search", params={"user": "u"}).status_code for _ in range(4)]
        health = client.get("/healthz")
        denied = client.get("/search", params={"user": "u"})
    assert codes == [200, 200, 200, 429]
    assert health.status_code == 200
    assert denied.json()["title"] == "Too Many Requests"
    assert denied.headers["RateLimit-Policy"] == '"global";q=3;w=60'
