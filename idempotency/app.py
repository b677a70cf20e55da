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

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from idempotency.api import PaymentsApi, router
from idempotency.children import provider_and_chargers
from idempotency.domain import StrategyName
from idempotency.events import ensure_topic
from idempotency.metrics import IdempotencyMetrics
from idempotency.settings import IdempotencySettings
from idempotency.sql import ping
from idempotency.strategies import build_strategies
from idempotency.strategies.recovery_points import Completer, RecoveryPoints
from idempotency.toolkit import fault_injector, open_toolkit
from labs.clients import kafka_producer, redis_client
from labs.clock import Clock, SystemClock
from labs.faults import install_faults
from labs.keys import KeyBuilder
from labs.outbox import PollingRelay
from labs.servers.health import probe_kafka
from labs.settings import ServerUrls
from labs.tasks import background
from labs.web import ProblemError, create_service_app, register_health_check
from labs.web.problems import problem_response

_log = logging.getLogger(__name__)
RELAY_RETRY_S = 1.0
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
            await ensure_topic(kafka, settings.topic)
            producer = kafka_producer(kafka)
            await producer.start()
            stack.push_async_callback(producer.stop)
            provider_url = await stack.enter_async_context(provider_and_chargers(settings, found))
            kit = await open_toolkit(
                stack,
                settings,
                database_url=found.require("database_url"),
                provider_url=provider_url,
                faults=faults,
                clock=clock,
            )
            strategies = build_strategies(
                kit, redis, KeyBuilder(settings.key_prefix), metrics.locks_lost.inc
            )
            completer = Completer(RecoveryPoints(kit), kit, metrics.count_completer_run)
            relay = PollingRelay(kit.engine, kit.store.tables.outbox, producer, clock=clock)
            app.state.payments = PaymentsApi(
                kit=kit, strategies=strategies, principals=settings.principals, metrics=metrics
            )
            register_health_check(app, "redis", redis.ping)
            register_health_check(app, "postgres", lambda: ping(kit.engine))
            register_health_check(app, "kafka", lambda: probe_kafka(kafka))
            register_health_check(app, "provider", kit.provider.ping)
            async with background(_relay_forever(relay, clock), completer.run()):
                yield

    app = create_service_app("idempotency", settings, lifespan=lifespan, routers=[router])
    faults = fault_injector(settings, clock)
    install_faults(app, faults, paths=FAULTY_PATHS)
    metrics = IdempotencyMetrics(app.state.metrics_registry)
    app.add_exception_handler(RedisError, _server_unavailable)
    app.add_exception_handler(SQLAlchemyError, _server_unavailable)
    return app


async def _relay_forever(relay: PollingRelay, clock: Clock) -> None:
    """Run the outbox relay, starting it again after a failure of PostgreSQL or Kafka."""
    while True:
        try:
            await relay.run()
        except (SQLAlchemyError, KafkaError, OSError) as exc:
            _log.warning("outbox relay failed (%s); retrying in %.0fs", exc, RELAY_RETRY_S)
            await clock.sleep(RELAY_RETRY_S)


async def _server_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Answer a Redis or PostgreSQL failure with 503 (retry later, same key); log the details."""
    _log.warning("%s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
    problem = ProblemError(
        503,
        "Service unavailable",
        f"a server the API needs failed ({type(exc).__name__}); retry with the same key",
        headers={"Retry-After": "1"},
    )
    return problem_response(problem, request.url.path)
