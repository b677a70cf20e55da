"""The webhook sink under schema fuzzing on real Redis: never a 5xx it did not mean to send."""

from pydantic import SecretStr
from redis.asyncio import Redis

from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from labs.testing.fuzz import fuzz_app
from scheduler.sink import WebhookSinkSettings, create_app


def test_the_sink_never_answers_5xx_to_fuzzed_requests(
    lab_urls: ServerUrls, keys: KeyBuilder, redis: Redis
) -> None:
    """Every operation, fed valid and invalid input, stays below 500.

    Without the admin token, so no fuzzed plan can inject the 503s (or the hang) that
    the sink sends on purpose; the admin routes are fuzzed as far as their 401.
    """
    del redis  # requested so that the fuzzed deliveries' keys are deleted afterwards
    settings = WebhookSinkSettings(admin_token=SecretStr("never-sent"), key_prefix=keys.prefix)
    report = fuzz_app(create_app(settings, urls=lab_urls))
    assert {"POST /hooks/{name}", "GET /v1/received", "PUT /v1/faults"} <= report.operations
