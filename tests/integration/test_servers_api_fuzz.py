"""The `servers` service under schema fuzzing, on the real servers: never a 5xx."""

from labs.clock import ManualClock
from labs.servers_api import ServersApiSettings, create_app
from labs.settings import ServerUrls
from labs.testing.fuzz import fuzz_app


def test_servers_service_never_answers_5xx_to_fuzzed_requests(lab_urls: ServerUrls) -> None:
    """Every documented operation, fuzzed with valid and invalid requests, stays below 500."""
    app = create_app(ServersApiSettings(), urls=lab_urls, clock=ManualClock())
    report = fuzz_app(app)
    assert report.operations == {"GET /healthz", "GET /metrics", "GET /v1/servers"}
