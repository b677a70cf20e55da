"""The app factory every lab service is built with.

`create_service_app` gives a FastAPI app the parts no service should write twice:
`GET /healthz` (a real round trip to each dependency the service registered),
`GET /metrics` (Prometheus text, after awaiting the service's scrape hooks, which set
gauges read from a server at scrape time), problem+json errors, the admin token, and request
metrics. The service passes its own lifespan, which creates its clients (nothing
connects at import) and registers their health checks.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from labs.settings import ServiceSettings
from labs.web.metrics import HttpMetrics, MetricsMiddleware
from labs.web.problems import install_problem_handlers

HealthCheck = Callable[[], Awaitable[object]]
ScrapeHook = Callable[[], Awaitable[object]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
_HEALTH_TIMEOUT_S = 2.0

system_router = APIRouter(tags=["system"])
_log = logging.getLogger("labs.web")


def register_health_check(app: FastAPI, name: str, check: HealthCheck) -> None:
    """Make `/healthz` await `check` (a real round trip to a dependency) on every call."""
    app.state.health_checks[name] = check


def register_scrape_hook(app: FastAPI, hook: ScrapeHook) -> None:
    """Make `/metrics` await `hook` (e.g. read queue depths into gauges) before rendering.

    Values are read when Prometheus asks, not by a polling loop; a hook that fails or
    takes over 2 s is logged and skipped, and the scrape still answers.
    """
    app.state.scrape_hooks.append(hook)


async def _run_check(check: HealthCheck) -> str | None:
    try:
        await asyncio.wait_for(check(), _HEALTH_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - any failure makes the dependency unhealthy
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


@system_router.get("/healthz", summary="Health of the service and of each dependency")
async def healthz(request: Request) -> JSONResponse:
    """Answer 200 when every dependency answers a round trip, else 503 naming the failures."""
    checks: dict[str, HealthCheck] = request.app.state.health_checks
    failures = await asyncio.gather(*(_run_check(check) for check in checks.values()))
    report = {name: failure or "ok" for name, failure in zip(checks, failures, strict=True)}
    healthy = not any(failures)
    body = {
        "status": "ok" if healthy else "unavailable",
        "service": request.app.title,
        "checks": report,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


@system_router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Expose the app's registry in the Prometheus text format."""
    hooks: list[ScrapeHook] = request.app.state.scrape_hooks
    for hook, failure in zip(hooks, await asyncio.gather(*map(_run_check, hooks)), strict=True):
        if failure:
            _log.warning("metrics scrape hook %s failed: %s", hook, failure)
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def create_service_app(
    name: str,
    settings: ServiceSettings,
    *,
    lifespan: Lifespan | None = None,
    routers: Sequence[APIRouter] = (),
    **fastapi_options: Any,
) -> FastAPI:
    """Return a FastAPI app with health, metrics, problem+json and admin auth wired in."""
    app = FastAPI(title=name, lifespan=lifespan, **fastapi_options)
    app.state.settings = settings
    app.state.admin_token = (
        settings.admin_token.get_secret_value() if settings.admin_token else None
    )
    app.state.health_checks = {}
    app.state.scrape_hooks = []
    app.state.metrics_registry = CollectorRegistry()
    app.add_middleware(MetricsMiddleware, metrics=HttpMetrics(app.state.metrics_registry))
    install_problem_handlers(app)
    app.include_router(system_router)
    for router in routers:
        app.include_router(router)
    return app
