"""The `servers` service: the lab's real servers seen over HTTP and in Prometheus.

`GET /v1/servers` probes Redis, PostgreSQL and Kafka with one real round trip each;
`lab_server_up{server=...}` carries the same answer to Prometheus and Grafana, kept
fresh by a background probe loop. It is the smallest service built on the app
factory, and the one compose's dashboard uses to show the servers' health.
"""

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from prometheus_client import Gauge
from pydantic import BaseModel
from pydantic_settings import SettingsConfigDict

from labs.clock import Clock, SystemClock
from labs.errors import describe
from labs.servers.health import probe_kafka, probe_postgres, probe_redis
from labs.settings import ServerUrls, ServiceSettings
from labs.tasks import background
from labs.urls import redact
from labs.web import create_service_app, register_health_check

Probe = Callable[[str], Awaitable[str]]
_PROBES: dict[str, tuple[str, Probe]] = {
    "redis": ("redis_url", probe_redis),
    "postgres": ("database_url", probe_postgres),
    "kafka": ("kafka_bootstrap_servers", probe_kafka),
}


class ServersApiSettings(ServiceSettings):
    """Options of the servers service (`SERVERS_API_*`)."""

    model_config = SettingsConfigDict(env_prefix="SERVERS_API_", extra="ignore", frozen=True)

    probe_interval_s: float = 5.0


class ServerHealth(BaseModel):
    """One server as a probe found it just now."""

    name: str
    url: str
    healthy: bool
    detail: str


async def probe_all(urls: ServerUrls) -> list[ServerHealth]:
    """Probe every configured server concurrently."""
    targets = [(name, getattr(urls, field), probe) for name, (field, probe) in _PROBES.items()]
    targets = [(name, url, probe) for name, url, probe in targets if url]

    async def one(name: str, url: str, probe: Probe) -> ServerHealth:
        try:
            return ServerHealth(name=name, url=redact(url), healthy=True, detail=await probe(url))
        except Exception as exc:  # noqa: BLE001 - any failure is reported as unhealthy
            return ServerHealth(name=name, url=redact(url), healthy=False, detail=describe(exc))

    return list(await asyncio.gather(*(one(*target) for target in targets)))


def create_app(
    settings: ServersApiSettings | None = None,
    urls: ServerUrls | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the servers service; the URLs are discovered when not given."""
    settings = settings or ServersApiSettings()
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.urls = urls or ServerUrls.discover()
        for name, (field, probe) in _PROBES.items():
            url = getattr(app.state.urls, field)
            if url:
                register_health_check(app, name, functools.partial(probe, url))
        async with background(_refresh_gauge(app, up, clock, settings.probe_interval_s)):
            yield

    app = create_service_app("servers", settings, lifespan=lifespan)
    up = Gauge(
        "lab_server_up",
        "1 when the server answered its last probe",
        ["server"],
        registry=app.state.metrics_registry,
    )

    @app.get("/v1/servers", summary="Probe each real server now")
    async def list_servers(request: Request) -> list[ServerHealth]:
        results = await probe_all(request.app.state.urls)
        _publish(up, results)
        return results

    return app


def _publish(gauge: Gauge, results: list[ServerHealth]) -> None:
    for result in results:
        gauge.labels(result.name).set(1 if result.healthy else 0)


async def _refresh_gauge(app: FastAPI, gauge: Gauge, clock: Clock, interval_s: float) -> None:
    while True:
        _publish(gauge, await probe_all(app.state.urls))
        await clock.sleep(interval_s)
