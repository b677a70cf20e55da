"""Wiring for the webhook sink: settings, the Redis ledger and the fault injector, in the lifespan.

Nothing connects at import. The fault plan lives in the process (a restart clears it);
the ledger lives in Redis (a restart keeps it).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import Counter, Gauge
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from labs.clients import redis_client
from labs.clock import Clock, SystemClock
from labs.faults import FaultInjector, install_faults
from labs.keys import KeyBuilder
from labs.settings import ServerUrls, ServiceSettings
from labs.web import create_service_app, register_health_check
from scheduler.sink.api import Sink, router
from scheduler.sink.ledger import Ledger


class WebhookSinkSettings(ServiceSettings):
    """Options of the webhook sink (`WEBHOOK_SINK_*`)."""

    model_config = SettingsConfigDict(env_prefix="WEBHOOK_SINK_", extra="ignore", frozen=True)

    port: int = 8103
    key_prefix: str = "whsink"
    seed: int = Field(default=0, description="Seed of the error-rate draws, restarted per plan.")


def create_app(
    settings: WebhookSinkSettings | None = None,
    urls: ServerUrls | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the webhook sink; server URLs are discovered when not given."""
    settings = settings or WebhookSinkSettings()
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = redis_client((urls or ServerUrls.discover()).require("redis_url"))
        held.set_function(lambda: faults.held)
        app.state.sink = Sink(
            faults=faults,
            ledger=Ledger(redis, KeyBuilder(settings.key_prefix)),
            deliveries=deliveries,
            duplicates=duplicates,
        )
        register_health_check(app, "redis", redis.ping)
        yield
        await redis.aclose()

    app = create_service_app("webhook-sink", settings, lifespan=lifespan, routers=[router])
    faults = FaultInjector(clock, settings.seed)
    install_faults(app, faults)
    registry = app.state.metrics_registry
    deliveries = Counter(
        "webhook_sink_deliveries", "Deliveries by status answered", ["status"], registry=registry
    )
    duplicates = Counter(
        "webhook_sink_duplicates", "2xx deliveries of an already delivered key", registry=registry
    )
    held = Gauge("webhook_sink_held", "Deliveries held by a hang now", registry=registry)
    return app
