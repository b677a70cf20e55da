"""The fault middleware over real TCP: refusals before the work, lost answers after it."""

from collections.abc import Iterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import SecretStr

from labs.clock import SystemClock
from labs.faults import FaultInjector, install_faults
from labs.settings import ServiceSettings
from labs.web import create_service_app
from labs.web.serve import serve_in_thread

TOKEN = "faults-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def build_app(work_done: list[str]) -> FastAPI:
    """An app whose one route records its work, with faults applied under `/work`."""
    router = APIRouter()

    @router.post("/work/{name}", status_code=201)
    async def work(name: str) -> dict[str, str]:
        work_done.append(name)
        return {"done": name}

    app = create_service_app(
        "faulty", ServiceSettings(admin_token=SecretStr(TOKEN)), routers=[router]
    )
    install_faults(app, FaultInjector(SystemClock(), 7, crash_points={"mid"}), paths=("/work",))
    return app


@pytest.fixture
def served() -> Iterator[tuple[httpx.Client, list[str]]]:
    """The app served on a free port, a client for it and the list of work it did."""
    work_done: list[str] = []
    with serve_in_thread(build_app(work_done)) as url, httpx.Client(base_url=url) as client:
        yield client, work_done


def test_a_dropped_answer_is_a_broken_connection_after_the_work(
    served: tuple[httpx.Client, list[str]],
) -> None:
    """With every answer dropped the client gets no response, yet the work was done."""
    client, work_done = served
    client.put("/v1/faults", json={"drop_response_rate": 1.0}, headers=ADMIN).raise_for_status()
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/work/a")
    assert work_done == ["a"]
    client.put("/v1/faults", json={}, headers=ADMIN).raise_for_status()
    assert client.post("/work/b").json() == {"done": "b"}
    assert work_done == ["a", "b"]


def test_an_outage_refuses_before_the_work_as_problem_json(
    served: tuple[httpx.Client, list[str]],
) -> None:
    """A refusal is a 503 problem naming the fault, and the route never ran."""
    client, work_done = served
    client.put("/v1/faults", json={"outage": True}, headers=ADMIN).raise_for_status()
    answer = client.post("/work/a")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["fault"] == "outage"
    assert work_done == []
    assert client.get("/healthz").status_code == 200, "paths outside /work are untouched"
    assert 'lab_faults_injected_total{fault="outage"} 1.0' in client.get("/metrics").text


def test_changing_the_plan_needs_the_admin_token_and_known_points(
    served: tuple[httpx.Client, list[str]],
) -> None:
    """No token: 401; an unknown crash point: 422 naming the known ones; reading is open."""
    client, _ = served
    assert client.put("/v1/faults", json={"outage": True}).status_code == 401
    refused = client.put("/v1/faults", json={"crash_points": {"elsewhere": 1}}, headers=ADMIN)
    assert refused.status_code == 422
    assert "has mid" in refused.json()["detail"]
    assert client.get("/v1/faults").json()["outage"] is False
