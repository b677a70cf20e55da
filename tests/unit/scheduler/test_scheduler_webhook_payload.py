"""The webhook job's payload validation, retry classification and the URL its errors show."""

from typing import Any

import pytest

from scheduler.domain import PermanentJobError
from scheduler.handlers import (
    DEFAULT_TIMEOUT_MS,
    InvalidPayloadError,
    WebhookError,
    WebhookRejectedError,
    is_retryable,
    parse_webhook_payload,
    retry_after_ms,
    shown_url,
)


def test_a_url_alone_is_a_valid_payload_with_defaults() -> None:
    """Only the URL is required: an empty JSON object, 5 s and no extra headers otherwise."""
    hook = parse_webhook_payload({"url": "https://example.com/hooks/a"})
    assert str(hook.url) == "https://example.com/hooks/a"
    assert hook.body == {}
    assert hook.timeout_ms == DEFAULT_TIMEOUT_MS
    assert hook.headers == {}


def test_every_field_is_kept() -> None:
    """Body (any JSON), timeout and headers are taken as given."""
    hook = parse_webhook_payload(
        {
            "url": "http://sink:8000/hooks/orders",
            "body": [1, {"a": None}],
            "timeout_ms": 50,
            "headers": {"X-Tenant": "7"},
        }
    )
    assert hook.body == [1, {"a": None}]
    assert hook.timeout_ms == 50
    assert hook.headers == {"X-Tenant": "7"}


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({}, "url: Field required"),
        ({"url": 42}, "url: URL input should be a string or URL"),
        ({"url": "ftp://example.com/x"}, "url: URL scheme should be 'http' or 'https'"),
        ({"url": "example.com/x"}, "url: Input should be a valid URL"),
        ({"url": "http://h/", "timeout_ms": 0}, "timeout_ms: Input should be greater than"),
        ({"url": "http://h/", "timeout_ms": 300_001}, "timeout_ms: Input should be less than"),
        ({"url": "http://h/", "timeout_ms": "50"}, "timeout_ms: Input should be a valid integer"),
        ({"url": "http://h/", "timeout_ms": True}, "timeout_ms: Input should be a valid integer"),
        ({"url": "http://h/", "headers": {"X-N": 1}}, "headers.X-N: Input should be a valid"),
        (
            {"url": "http://h/", "headers": {"idempotency-key": "mine"}},
            "headers: Value error, idempotency-key is set by the worker, not by the payload",
        ),
        (
            {"url": "http://h/", "headers": {"Content-Length": "0", "X-Attempt": "9"}},
            "headers: Value error, Content-Length, X-Attempt is set by the worker",
        ),
        ({"url": "http://h/", "timeout": 50}, "timeout: Extra inputs are not permitted"),
    ],
)
def test_an_invalid_payload_is_a_permanent_failure_that_says_why(
    payload: dict[str, Any], problem: str
) -> None:
    """Each invalid field is named in the message, and the error is not worth retrying."""
    with pytest.raises(InvalidPayloadError) as raised:
        parse_webhook_payload(payload)
    assert str(raised.value).startswith("invalid webhook payload: ")
    assert problem in str(raised.value)
    assert isinstance(raised.value, PermanentJobError)


def test_every_problem_is_reported_at_once() -> None:
    """A payload wrong in two ways names both, so one fix is enough."""
    with pytest.raises(InvalidPayloadError, match="url: Field required; timeout_ms: "):
        parse_webhook_payload({"timeout_ms": -1})


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (408, True),
        (425, True),
        (429, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (410, False),
        (422, False),
        (301, False),
        (307, False),
    ],
)
def test_only_server_errors_and_not_now_answers_are_retryable(
    status: int, *, retryable: bool
) -> None:
    """5xx, 408, 425 and 429 may pass later; other 4xx and redirects never will."""
    assert is_retryable(status) is retryable


def test_a_rejection_is_a_webhook_error_and_a_permanent_one() -> None:
    """The worker may catch a refused webhook either as a webhook failure or as permanent."""
    error = WebhookRejectedError("http://h/x", "404 after 3 ms", status=404)
    assert isinstance(error, WebhookError)
    assert isinstance(error, PermanentJobError)
    assert str(error) == "POST http://h/x: 404 after 3 ms"
    assert error.status == 404


def test_error_messages_show_no_credentials_query_or_fragment() -> None:
    """Secrets in a webhook URL's userinfo or query string never reach the dead-letter table."""
    url = "https://user:pw@example.com:8443/hooks/a?token=s3cret#frag"
    assert shown_url(url) == "https://example.com:8443/hooks/a"


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120_000),
        (" 0 ", 0),
        ("Tue, 14 Nov 2023 22:13:27 GMT", 7_000),  # NOW + 7 s as an HTTP date
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0),  # in the past: now
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(
    header: str | None, expected: int | None
) -> None:
    """Delta-seconds and HTTP dates are honoured; anything else is ignored, not guessed."""
    assert retry_after_ms(header, NOW) == expected
