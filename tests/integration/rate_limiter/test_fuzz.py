"""The rate-limit service under schema fuzzing on real Redis: never a 5xx, admin routes included."""

from pydantic import SecretStr

from labs.clock import ManualClock
from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from labs.testing.fuzz import fuzz_app
from rate_limiter.app import RateLimiterSettings, create_app

TOKEN = "fuzz-admin-token"


def test_rate_limiter_never_answers_5xx_to_fuzzed_requests(
    lab_urls: ServerUrls, keys: KeyBuilder
) -> None:
    """Every operation, fed valid and invalid input (admin token sent), stays below 500."""
    settings = RateLimiterSettings.model_validate(
        {"admin_token": SecretStr(TOKEN), "key_prefix": keys.prefix}
    )
    app = create_app(settings, urls=lab_urls, clock=ManualClock())
    report = fuzz_app(app, headers={"Authorization": f"Bearer {TOKEN}"})
    assert {"POST /v1/check", "POST /v1/check/batch", "PUT /v1/rules/{name}"} <= report.operations
