"""Wiring for the payment provider: settings, its ledger and its faults, in the lifespan.

Nothing connects at import. The ledger lives in PostgreSQL (a restart keeps it); the
fault plan lives in the process (a restart clears it, unless `PAYMENT_PROVIDER_FAULTS`
sets one at start). Faults apply to `POST` requests only — the charges and refunds —
so the ledger stays readable, and resettable, whatever the plan.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import Counter, Gauge
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from starlette.types import ASGIApp, Receive, Scope, Send

from idempotency.provider.api import router
from idempotency.provider.ledger import Ledger, LedgerTables
from idempotency.sql import create_tables, engine_in_schema, ping
from labs.clock import Clock, SystemClock
from labs.faults import FaultInjector, FaultMiddleware, Faults, install_faults
from labs.settings import ServerUrls, ServiceSettings
from labs.web import create_service_app, register_health_check

HELD_METRIC = "payment_provider_held_requests"


class PaymentProviderSettings(ServiceSettings):
    """Options of the payment provider (`PAYMENT_PROVIDER_*`)."""

    model_config = SettingsConfigDict(env_prefix="PAYMENT_PROVIDER_", extra="ignore", frozen=True)

    port: int = 8105
    db_schema: str = Field(default="provider", min_length=1, description="Its tables' schema.")
    faults: Faults = Field(default_factory=Faults, description="The fault plan at start (JSON).")
    seed: int = Field(default=0, description="Seed of the fault draws, restarted per plan.")


class PostFaults:
    """Applies a fault plan to `POST` requests only; reads and admin calls pass untouched."""

    def __init__(self, app: ASGIApp, injector: FaultInjector, injected: Counter) -> None:
        """Wrap `app`."""
        self._app = app
        self._faulty = FaultMiddleware(app, injector, ("/",), injected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send a `POST` through the fault middleware, anything else straight to the app."""
        posted = scope["type"] == "http" and scope["method"] == "POST"
        await (self._faulty if posted else self._app)(scope, receive, send)


def create_app(
    settings: PaymentProviderSettings | None = None,
    urls: ServerUrls | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the payment provider; the database URL is discovered when not given."""
    settings = settings or PaymentProviderSettings()
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database_url = (urls or ServerUrls.discover()).require("database_url")
        engine = engine_in_schema(database_url, settings.db_schema)
        try:
            tables = LedgerTables()
            await create_tables(engine, settings.db_schema, tables.metadata)
            app.state.ledger = Ledger(engine, tables)
            register_health_check(app, "postgres", lambda: ping(engine))
            yield
        finally:
            await engine.dispose()

    app = create_service_app("payment-provider", settings, lifespan=lifespan, routers=[router])
    faults = FaultInjector(clock, settings.seed)
    faults.change(settings.faults)
    install_faults(app, faults)
    injected = Counter(
        "lab_faults_injected",
        "Faults injected by kind",
        ["fault"],
        registry=app.state.metrics_registry,
    )
    app.add_middleware(PostFaults, injector=faults, injected=injected)
    held = Gauge(HELD_METRIC, "Requests held by a hang now", registry=app.state.metrics_registry)
    held.set_function(lambda: faults.held)
    return app
