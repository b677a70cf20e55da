"""Wiring for a hop of the chain: settings, the shared HTTP pool, the ledger, the fault injector.

Nothing connects at import. The policies and the fault plan live in the process (a
restart clears them, and the runner sets both before each run); the ledger lives in
PostgreSQL, in the schema `FAILSIM_DB_SCHEMA` names.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

from labs.clients import http_client, sql_engine
from labs.clock import Clock, SystemClock
from labs.failsim.chain.api import Hop, router
from labs.failsim.chain.client import WORK_PATH, DependencyClient
from labs.failsim.chain.ledger import Ledger
from labs.failsim.chain.stats import Arrivals
from labs.failsim.config import EdgePolicy
from labs.faults import FaultInjector, install_faults
from labs.settings import ServerUrls, ServiceSettings
from labs.web import create_service_app, register_health_check


class HopSettings(ServiceSettings):
    """Options of a hop (`FAILSIM_*`); `downstream` is JSON: `{"orders": "http://..."}`."""

    model_config = SettingsConfigDict(env_prefix="FAILSIM_", extra="ignore", frozen=True)

    name: str = "gateway"
    downstream: dict[str, str] = Field(default_factory=dict)
    side_effects: bool = Field(default=False, description="Write a ledger row per request.")
    db_schema: str | None = Field(default=None, description="The ledger's PostgreSQL schema.")
    pool_size: int = Field(default=20, ge=1, description="Connections shared by all edges.")
    default_deadline_ms: int = Field(default=5_000, ge=1)
    seed: int = 0


def create_app(
    settings: HopSettings | None = None,
    urls: ServerUrls | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Build a hop; server URLs are discovered when not given."""
    settings = settings or HopSettings()
    clock = clock or SystemClock()
    arrivals = Arrivals()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ledger, engine = None, None
        if settings.side_effects:
            engine = _engine(settings, urls or ServerUrls.discover())
            ledger = Ledger(engine)
            await ledger.create()
            register_health_check(app, "postgres", ledger.counts)

        def make_client(
            pool: httpx.AsyncClient, url: str, policy: EdgePolicy, edge: int
        ) -> DependencyClient:
            return DependencyClient(url, pool, policy, clock, settings.seed * 1_000 + edge)

        hop = Hop(
            name=settings.name,
            clock=clock,
            downstream=settings.downstream,
            default_deadline_s=settings.default_deadline_ms / 1000,
            make_client=make_client,
            make_pool=lambda: http_client(max_connections=settings.pool_size),
            ledger=ledger,
            arrivals=arrivals,
        )
        await hop.configure({})
        app.state.hop = hop
        try:
            yield
        finally:
            await hop.close()
            if engine is not None:
                await engine.dispose()

    app = create_service_app(
        f"failsim-{settings.name}", settings, lifespan=lifespan, routers=[router]
    )
    install_faults(app, FaultInjector(clock, settings.seed), paths=(WORK_PATH,))
    app.add_middleware(ArrivalStamp, clock=clock, arrivals=arrivals)  # outermost: before faults
    return app


class ArrivalStamp:
    """Counts work requests and stamps their arrival, so a deadline counts from then.

    Outermost, so a request refused or delayed by an injected fault is counted, and the
    delay is spent from its deadline.
    """

    def __init__(self, app: ASGIApp, clock: Clock, arrivals: Arrivals) -> None:
        """Wrap `app`, reading `clock.monotonic()` and counting into `arrivals`."""
        self._app = app
        self._clock = clock
        self._arrivals = arrivals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stamp (`request.state.arrived`) and count, then pass the request on."""
        if scope["type"] == "http" and str(scope["path"]).startswith(WORK_PATH):
            scope.setdefault("state", {})["arrived"] = self._clock.monotonic()
            self._arrivals.count += 1
        await self._app(scope, receive, send)


def _engine(settings: HopSettings, urls: ServerUrls) -> AsyncEngine:
    options: dict[str, Any] = {}
    if settings.db_schema:
        options["connect_args"] = {"server_settings": {"search_path": settings.db_schema}}
    return sql_engine(urls.require("database_url"), **options)
