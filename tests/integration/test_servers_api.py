"""The `servers` service over real HTTP: health, the probe endpoint and its metric."""

import httpx

from labs.clock import ManualClock
from labs.servers_api import ServersApiSettings, create_app
from labs.settings import ServerUrls
from labs.web.serve import serve_in_thread


def test_servers_service_reports_each_real_server(lab_urls: ServerUrls) -> None:
    """/healthz and /v1/servers round-trip to the three servers; /metrics exports lab_server_up."""
    app = create_app(ServersApiSettings(), urls=lab_urls, clock=ManualClock())
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url) as http:
        health = http.get("/healthz")
        servers = http.get("/v1/servers").json()
        metrics = http.get("/metrics").text
    assert health.status_code == 200
    assert health.json()["checks"] == {"redis": "ok", "postgres": "ok", "kafka": "ok"}
    assert {entry["name"]: entry["healthy"] for entry in servers} == {
        "redis": True,
        "postgres": True,
        "kafka": True,
    }
    assert 'lab_server_up{server="postgres"} 1.0' in metrics


def test_servers_service_answers_503_naming_an_unreachable_server(lab_urls: ServerUrls) -> None:
    """A server nobody listens for makes /healthz 503 and names it; the others stay ok."""
    broken = lab_urls.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    app = create_app(ServersApiSettings(), urls=broken, clock=ManualClock())
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url) as http:
        health = http.get("/healthz")
        http.get("/v1/servers")
        metrics = http.get("/metrics").text
    assert health.status_code == 503
    checks = health.json()["checks"]
    assert checks["postgres"] == "ok"
    assert checks["redis"].startswith("ConnectionError")
    assert 'lab_server_up{server="redis"} 0.0' in metrics
