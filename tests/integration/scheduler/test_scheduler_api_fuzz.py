"""The scheduler API under schema fuzzing on real Redis and PostgreSQL: never a 5xx."""

from pydantic import SecretStr

from labs.clock import ManualClock
from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from labs.testing.fuzz import fuzz_app
from scheduler.app import SchedulerSettings, create_app

TOKEN = "fuzz-admin-token"


def test_scheduler_api_never_answers_5xx_to_fuzzed_requests(
    lab_urls: ServerUrls, keys: KeyBuilder, db_schema: str
) -> None:
    """Every operation, fed valid and invalid input (admin token sent), stays below 500."""
    settings = SchedulerSettings.model_validate(
        {"admin_token": SecretStr(TOKEN), "key_prefix": keys.prefix, "database_schema": db_schema}
    )
    app = create_app(settings, urls=lab_urls, clock=ManualClock())
    report = fuzz_app(app, headers={"Authorization": f"Bearer {TOKEN}"})
    assert {
        "POST /v1/jobs",
        "POST /v1/jobs/bulk",
        "GET /v1/jobs/{job_id}",
        "GET /v1/dlq",
        "POST /v1/dlq/requeue",
        "POST /v1/dlq/purge",
    } <= report.operations
