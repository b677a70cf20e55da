"""Wiring for the payments API: settings, clients, strategies and background work, in the lifespan.

Nothing connects at import. The lifespan opens Redis, PostgreSQL (its tables in
`IDEMPOTENCY_DB_SCHEMA`), a Kafka producer and a pooled HTTP client for the provider;
starts the provider and the chargers as child processes unless a provider URL is
given (`children.py`); builds the six strategies on one `Toolkit`; and runs the outbox
relay and the recovery-points completer as background tasks. `/healthz` makes a round
trip to Redis, PostgreSQL, Kafka and the provider. Faults (`labs.faults`) apply to the
payment routes; the crash points are reached inside the strategies.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from idempotency.api import PaymentsApi, router
from idempotency.children import provider_and_chargers
from idempotency.domain import CrashPoint, StrategyName
from idempotency.metrics import IdempotencyMetrics
from idempotency.provider_client import ProviderClient
from idempotency.settings import IdempotencySettings
from idempotency.sql import create_tables, engine_in_schema, ping
from idempotency.store import PaymentStore, Tables
from idempotency.strategies import build_strategies
from idempotency.strategies.base import Toolkit
from labs.clients import http_client, redis_client
from labs.clock import Clock, SystemClock
from labs.faults import FaultInjector, install_faults
from labs.servers.health import probe_kafka
from labs.settings import ServerUrls
from labs.web import create_service_app, register_health_check

FAULTY_PATHS = (*(f"/v1/{name}/payments" for name in StrategyName), "/v1/payments")
"""The routes faults apply to: the payments, not `/v1/faults` nor `/v1/strategies`."""


def create_app(
    settings: IdempotencySettings | None = None,
    urls: ServerUrls | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the payments API; server URLs are discovered when not given."""
    settings = settings or IdempotencySettings()
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per provider call
        found = urls or ServerUrls.discover()
        kafka = found.require("kafka_bootstrap_servers")
        async with AsyncExitStack() as stack:
            redis = redis_client(found.require("redis_url"))
            stack.push_async_callback(redis.aclose)
            engine = engine_in_schema(found.require("database_url"), settings.db_schema)
            stack.push_async_callback(engine.dispose)
            http = http_client(timeout=settings.provider_timeout_s)
            stack.push_async_callback(http.aclose)
            tables = Tables()
            await create_tables(engine, settings.db_schema, tables.metadata)
            provider_url = await stack.enter_async_context(provider_and_chargers(settings, found))
            provider = ProviderClient(http, provider_url)
            kit = Toolkit(engine, PaymentStore(tables), provider, faults, clock, settings)
            app.state.payments = PaymentsApi(
                kit=kit,
                strategies=build_strategies(kit),
                principals=settings.principals,
                metrics=metrics,
            )
            register_health_check(app, "redis", redis.ping)
            register_health_check(app, "postgres", lambda: ping(engine))
            register_health_check(app, "kafka", lambda: probe_kafka(kafka))
            register_health_check(app, "provider", provider.ping)
            yield

    app = create_service_app("idempotency", settings, lifespan=lifespan, routers=[router])
    faults = FaultInjector(clock, settings.seed, crash_points=[point.value for point in CrashPoint])
    faults.change(settings.faults)
    install_faults(app, faults, paths=FAULTY_PATHS)
    metrics = IdempotencyMetrics(app.state.metrics_registry)
    return app
