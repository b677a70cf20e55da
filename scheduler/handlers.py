"""Built-in job types: noop, sleep, fail, flaky and webhook, for demos, tests and experiments.

Pattern: handlers are `async (Job) -> None`; raising fails the attempt (the worker
retries with backoff or declares the job dead). A worker gets its handlers from a
factory, `(HandlerContext) -> {type: handler}`: `builtin_handlers` by default, or any
`module:function` given to `python -m scheduler.worker --handlers`. Guarantee: they
read time and chance only through the context's clock and `random.Random`, so a test
decides how long a `sleep` takes and which `flaky` attempts fail; `webhook` posts
through the context's one `httpx.AsyncClient`, so a worker process pools its
connections. Failure they model: a job that always fails (`fail`), one that fails with
probability `p` (`flaky`), and a receiver that errs, stalls or is gone (`webhook`).
Every handler must be safe to run more than once: delivery is at least once.
"""

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    JsonValue,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)
from redis.asyncio import Redis, RedisCluster

from labs.clock import Clock
from scheduler.domain import Job, PermanentJobError, RetryLaterError

Handler = Callable[[Job], Awaitable[None]]


@dataclass(frozen=True)
class HandlerContext:
    """What a handler factory may bind its handlers to: the worker's clock, RNG and clients."""

    clock: Clock
    rng: random.Random
    redis: Redis | RedisCluster
    http: httpx.AsyncClient
    """One pooled client per worker process, opened and closed by whoever runs the worker."""


HandlerFactory = Callable[[HandlerContext], dict[str, Handler]]


class JobFailedError(Exception):
    """A handler's deliberate failure."""


class InvalidPayloadError(PermanentJobError):
    """The job's payload is one its handler can never run, so retrying is pointless."""


def builtin_handlers(context: HandlerContext) -> dict[str, Handler]:
    """Return the built-in handlers by job type, bound to the context's clock, RNG and client."""
    clock, rng = context.clock, context.rng

    async def noop(job: Job) -> None:
        del job

    async def sleep(job: Job) -> None:
        await clock.sleep(float(job.payload.get("ms", 0)) / 1000)

    async def fail(job: Job) -> None:
        raise JobFailedError(str(job.payload.get("message", "fail")))

    async def flaky(job: Job) -> None:
        if rng.random() < float(job.payload.get("p", 0.5)):
            raise JobFailedError("flaky")

    async def webhook(job: Job) -> None:
        """POST the payload's body to its URL; see `post_webhook` for what fails and how."""
        await post_webhook(context.http, clock, parse_webhook_payload(job.payload), job)

    return {"noop": noop, "sleep": sleep, "fail": fail, "flaky": flaky, "webhook": webhook}


# --- webhook -------------------------------------------------------------------------

DEFAULT_TIMEOUT_MS = 5_000
MAX_TIMEOUT_MS = 300_000
"""The worker's default handler timeout: a longer webhook timeout could never fire."""
RETRYABLE_4XX = frozenset({408, 425, 429})
"""Client errors that mean "not now" (timeout, too early, too many requests), not "never"."""
IDEMPOTENCY_KEY = "Idempotency-Key"
ATTEMPT = "X-Attempt"
_RESERVED_HEADERS = frozenset(
    {IDEMPOTENCY_KEY.lower(), ATTEMPT.lower(), "content-length", "host", "transfer-encoding"}
)
"""Set by the worker or by the HTTP client: a payload that sets them would forge or break them."""


class WebhookPayload(BaseModel):
    """A `webhook` job's payload: where to POST, what, and how long to wait for the answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl
    body: JsonValue = Field(default_factory=dict)
    timeout_ms: StrictInt = Field(default=DEFAULT_TIMEOUT_MS, ge=1, le=MAX_TIMEOUT_MS)
    headers: dict[StrictStr, StrictStr] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _leaves_delivery_headers_alone(cls, headers: dict[str, str]) -> dict[str, str]:
        reserved = sorted(name for name in headers if name.lower() in _RESERVED_HEADERS)
        if reserved:
            raise ValueError(f"{', '.join(reserved)} is set by the worker, not by the payload")
        return headers


class WebhookError(RetryLaterError):
    """A delivery that failed: a non-2xx answer (`status`), a timeout or a connection error.

    The message is what a dead-letter reader needs: `POST <url>: 503 after 12 ms`. The
    URL is shown without its query string and credentials, which may carry secrets. A
    429 or 5xx that carried `Retry-After` sets `after_ms`: the worker retries no sooner.
    """

    def __init__(
        self, url: str, problem: str, *, status: int | None = None, after_ms: int | None = None
    ) -> None:
        """Describe a failed POST to `url` (already stripped of secrets)."""
        super().__init__(f"POST {url}: {problem}", after_ms=after_ms)
        self.url = url
        self.status = status


class WebhookRejectedError(WebhookError, PermanentJobError):
    """The receiver refused the request itself (a 4xx but 408/425/429, or a 3xx): never retry.

    The same request would be refused the same way, so the job belongs in the
    dead-letter queue at once. Redirects are not followed: a POST that is redirected
    may silently become a GET, so a webhook URL must name the receiver itself.
    """


def parse_webhook_payload(payload: Mapping[str, Any]) -> WebhookPayload:
    """Return the payload validated, or raise `InvalidPayloadError` naming each problem."""
    try:
        return WebhookPayload.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'payload'}: {error['msg']}"
            for error in exc.errors()
        )
        raise InvalidPayloadError(f"invalid webhook payload: {problems}") from None


def is_retryable(status: int) -> bool:
    """Return whether a non-2xx answer may succeed later: every 5xx, and 408, 425, 429."""
    return status >= 500 or status in RETRYABLE_4XX  # noqa: PLR2004 - the 5xx class


def shown_url(url: str) -> str:
    """Return `url` as error messages show it: no credentials, query string or fragment."""
    return str(httpx.URL(url).copy_with(userinfo=b"", query=None, fragment=None))


async def post_webhook(
    http: httpx.AsyncClient, clock: Clock, hook: WebhookPayload, job: Job
) -> None:
    """POST `hook.body` as JSON with `Idempotency-Key: <job id>` and `X-Attempt: <attempt>`.

    Success is any 2xx. The timeout bounds the whole call, connecting included, in real
    time (it guards a real network call); elapsed times in messages come from `clock`.
    Raises `WebhookError` on a 5xx, 408, 425 or 429, a timeout or a connection error
    (the worker retries it, no sooner than a `Retry-After` the answer carried), and
    `WebhookRejectedError`, a `PermanentJobError`, on any other answer (the job should
    go straight to the dead-letter queue). The receiver
    must dedupe on the idempotency key: a timeout after it accepted a request, or a
    worker killed before its ack, makes the worker deliver the same job again.
    """
    url = str(hook.url)
    shown = shown_url(url)
    timeout_s = hook.timeout_ms / 1000
    headers = httpx.Headers({"Content-Type": "application/json"})
    headers.update(hook.headers)
    headers.update({IDEMPOTENCY_KEY: job.id, ATTEMPT: str(job.attempts)})
    # Encoded here, not with httpx's `json=`, which would send no body at all for `null`.
    content = json.dumps(hook.body, separators=(",", ":")).encode()
    started = clock.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            response = await http.post(url, content=content, headers=headers, timeout=timeout_s)
    except (TimeoutError, httpx.TimeoutException):
        raise WebhookError(shown, f"no answer within {hook.timeout_ms} ms") from None
    except httpx.HTTPError as exc:
        elapsed = _elapsed_ms(clock, started)
        cause = str(exc) or "no detail"
        raise WebhookError(shown, f"{type(exc).__name__} after {elapsed} ms ({cause})") from exc
    if response.is_success:
        return
    status = response.status_code
    problem = f"{status} after {_elapsed_ms(clock, started)} ms"
    if not is_retryable(status):
        raise WebhookRejectedError(shown, problem, status=status)
    after_ms = retry_after_ms(response.headers.get("Retry-After"), clock.time())
    raise WebhookError(shown, problem, status=status, after_ms=after_ms)


def retry_after_ms(value: str | None, now_s: float) -> int | None:
    """Return a `Retry-After` header's wait in ms (delta-seconds or an HTTP date), or None.

    A date in the past means now (0); a value that is neither form is ignored.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value) * 1000
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0, round((when.timestamp() - now_s) * 1000))


def _elapsed_ms(clock: Clock, started: float) -> int:
    return round((clock.monotonic() - started) * 1000)
