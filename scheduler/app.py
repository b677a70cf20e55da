"""Wiring for the scheduler's HTTP API: settings, clients and a journal drain, in the lifespan.

Nothing connects at import. The lifespan creates the Redis client and the PostgreSQL
engine, makes sure the scheduler's tables exist, runs a `JournalDrain` in the
background (so the audit history of the jobs it enqueues shows up even before a worker
runs), registers health checks for both servers and a scrape hook for the queue, lane
and DLQ gauges; on shutdown it drains what is left and closes the clients. `lab serve
scheduler` runs `create_app()` with settings from `SCHEDULER_*`.
"""

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.clients import redis_client, sql_engine
from labs.clock import Clock, SystemClock
from labs.keys import KeyBuilder
from labs.settings import ServerUrls, ServiceSettings
from labs.web import ProblemError, create_service_app, register_health_check, register_scrape_hook
from labs.web.problems import problem_response
from scheduler.api import Scheduler, dlq_router, jobs_router, lanes_router
from scheduler.domain import DEFAULT_MAX_ATTEMPTS
from scheduler.metrics import SchedulerMetrics
from scheduler.queue import RedisQueue
from scheduler.store import JournalDrain, ensure_schema

_log = logging.getLogger(__name__)
_RETRY = {"Retry-After": "1"}


class SchedulerSettings(ServiceSettings):
    """Options of the scheduler API (`SCHEDULER_*`)."""

    model_config = SettingsConfigDict(env_prefix="SCHEDULER_", extra="ignore", frozen=True)

    port: int = 8102
    key_prefix: str = Field(default="sched", description="As `lab worker` uses.")
    queue: str = Field(default="default", min_length=1)
    max_attempts_cap: int = Field(
        default=DEFAULT_MAX_ATTEMPTS, ge=1, description="Refuse jobs asking for more attempts."
    )
    bulk_limit: int = Field(default=1_000, ge=1, description="Jobs per bulk request at most.")
    database_schema: str | None = Field(
        default=None, description="PostgreSQL schema of the tables (default: the search path)."
    )
    audit_interval_s: float = Field(
        default=0.2, gt=0, description="How often the journal is drained into the audit log."
    )


def create_app(
    settings: SchedulerSettings | None = None,
    urls: ServerUrls | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the scheduler API; server URLs are discovered when not given."""
    settings = settings or SchedulerSettings()
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        found = urls or ServerUrls.discover()
        redis = redis_client(found.require("redis_url"))
        engine = sql_engine(found.require("database_url"), **_in_schema(settings.database_schema))
        try:
            await ensure_schema(engine)
            queue = RedisQueue(redis, KeyBuilder(settings.key_prefix), settings.queue)
            drain = JournalDrain(
                redis,
                queue.journal_key,
                engine,
                consumer=f"api-{uuid.uuid4().hex[:12]}",
                clock=clock,
            )
            app.state.drain = drain
            app.state.scheduler = Scheduler(
                queue=queue,
                engine=engine,
                count_enqueued=metrics.count_enqueued,
                max_attempts_cap=settings.max_attempts_cap,
                bulk_limit=settings.bulk_limit,
            )
            register_health_check(app, "redis", redis.ping)
            register_health_check(app, "postgres", lambda: _ping(engine))
            register_scrape_hook(app, lambda: metrics.refresh(queue, settings.queue, engine))
            async with drain.running(settings.audit_interval_s):
                yield
        finally:
            await redis.aclose()
            await engine.dispose()

    app = create_service_app(
        "scheduler", settings, lifespan=lifespan, routers=[jobs_router, dlq_router, lanes_router]
    )
    app.add_exception_handler(RedisError, _unavailable("Redis"))
    app.add_exception_handler(SQLAlchemyError, _unavailable("PostgreSQL"))
    metrics = SchedulerMetrics(app.state.metrics_registry)
    return app


def _in_schema(schema: str | None) -> dict[str, Any]:
    """Return engine options that put every connection in `schema` (None: the default)."""
    if schema is None:
        return {}
    return {"connect_args": {"server_settings": {"search_path": schema}}}


async def _ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def _unavailable(server: str) -> Any:
    """Return a handler answering a server failure as a 503 problem (details in the log)."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        _log.warning("%s failed on %s %s", server, request.method, request.url.path, exc_info=exc)
        problem = ProblemError(
            503, f"{server} unavailable", f"{type(exc).__name__}; retry later", headers=_RETRY
        )
        return problem_response(problem, request.url.path)

    return handle
