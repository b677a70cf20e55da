"""The app factory: problem+json errors, admin auth, health and metrics (no servers needed)."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import Gauge
from pydantic import BaseModel, SecretStr

from labs.settings import ServiceSettings
from labs.web import (
    AdminDep,
    ProblemError,
    create_service_app,
    register_health_check,
    register_scrape_hook,
)

TOKEN = "s3cret-token"


class Item(BaseModel):
    """A body to validate."""

    amount: int


def build_app(token: str | None = TOKEN) -> FastAPI:
    """An app with one route of each kind the factory must handle."""
    router = APIRouter()

    @router.post("/items")
    async def create(item: Item) -> Item:
        return item

    @router.get("/teapot")
    async def teapot() -> None:
        raise ProblemError(
            418, "I'm a teapot", "short and stout", type_="https://lab/teapot", spout=1
        )

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    @router.delete("/admin/things/{name}")
    async def delete_thing(name: str, _: AdminDep) -> dict[str, str]:
        return {"deleted": name}

    settings = ServiceSettings(admin_token=SecretStr(token) if token else None)
    return create_service_app("test-service", settings, routers=[router])


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app in process (the factory's parts need no servers)."""
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        yield http


async def test_invalid_body_is_a_422_problem_naming_the_field(client: httpx.AsyncClient) -> None:
    """Validation errors come back as problem+json with each field's message."""
    response = await client.post("/items", json={"amount": "many"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["title"] == "Invalid request"
    assert body["errors"][0]["loc"] == ["body", "amount"]
    assert "amount" in body["detail"]


async def test_raised_problem_keeps_its_type_and_extensions(client: httpx.AsyncClient) -> None:
    """A ProblemError's status, type and extra members reach the client."""
    response = await client.get("/teapot")
    assert response.status_code == 418
    assert response.json() == {
        "type": "https://lab/teapot",
        "title": "I'm a teapot",
        "status": 418,
        "detail": "short and stout",
        "instance": "/teapot",
        "spout": 1,
    }


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    """Even the router's own errors are problem+json."""
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_unexpected_error_is_a_500_that_leaks_nothing(client: httpx.AsyncClient) -> None:
    """A bug answers 500 problem+json without the exception's text."""
    response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret" not in response.text


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer", f"bearer {TOKEN}x"],
)
async def test_admin_route_refuses_missing_or_wrong_tokens(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    """Anything but the exact bearer token is a 401 with a Bearer challenge."""
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.delete("/admin/things/x", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_admin_route_accepts_the_token(client: httpx.AsyncClient) -> None:
    """The configured token opens the admin route."""
    response = await client.delete("/admin/things/x", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.json() == {"deleted": "x"}


async def test_admin_routes_are_closed_when_no_token_is_configured() -> None:
    """A service started without a token refuses admin calls instead of allowing them."""
    transport = httpx.ASGITransport(app=build_app(token=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        response = await http.delete("/admin/things/x", headers={"Authorization": "Bearer "})
    assert response.status_code == 401
    assert "disabled" in response.json()["title"]


async def test_healthz_reports_each_check_and_503_when_one_fails() -> None:
    """/healthz is 200 only when every registered dependency answers."""
    app = build_app()

    async def fine() -> None:
        return None

    async def broken() -> None:
        raise ConnectionRefusedError("redis is down")

    register_health_check(app, "postgres", fine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        healthy = await http.get("/healthz")
        register_health_check(app, "redis", broken)
        unhealthy = await http.get("/healthz")
    assert healthy.status_code == 200
    assert healthy.json()["checks"] == {"postgres": "ok"}
    assert unhealthy.status_code == 503
    assert unhealthy.json()["checks"]["redis"] == "ConnectionRefusedError: redis is down"


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    """Requests are counted under the route's template, never the raw path."""
    for name in ("a", "b"):
        await client.delete(f"/admin/things/{name}", headers={"Authorization": f"Bearer {TOKEN}"})
    metrics = (await client.get("/metrics")).text
    assert (
        'http_requests_total{method="DELETE",route="/admin/things/{name}",status="200"} 2.0'
        in metrics
    )
    assert "http_request_duration_seconds_bucket" in metrics


async def test_scrape_hooks_run_at_each_scrape_and_a_failing_one_is_skipped() -> None:
    """/metrics awaits every hook before rendering; a hook that raises does not fail it."""
    app = build_app()
    depth = Gauge("queue_depth", "Read at scrape time", registry=app.state.metrics_registry)
    reads = iter([3, 7])

    async def read_depth() -> None:
        depth.set(next(reads))

    async def broken() -> None:
        raise ConnectionRefusedError("redis is down")

    register_scrape_hook(app, broken)
    register_scrape_hook(app, read_depth)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        first, second = await http.get("/metrics"), await http.get("/metrics")
    assert (first.status_code, second.status_code) == (200, 200)
    assert "queue_depth 3.0" in first.text
    assert "queue_depth 7.0" in second.text
