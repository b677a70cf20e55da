"""Fuzz a lab service's OpenAPI schema over real HTTP, and fail on any 5xx.

The pattern: a test builds its service's FastAPI app (on the session's real servers)
and calls `fuzz_app(app)`. The app is served by uvicorn on a loopback port with its
lifespan running (`serve_in_thread`), exactly as clients meet it, not in-process over
ASGI. Schemathesis loads `/openapi.json` from it and, for every operation, draws
requests from the schema, valid (positive) and deliberately invalid (negative), sends
them, and checks each response. `headers` go with every request, so operations behind
the admin token are fuzzed past the 401. Each failing operation is shrunk by
Hypothesis to its smallest request and reported together, with a curl command that
reproduces it; `FuzzFailedError` is an `AssertionError`, so pytest shows it as a failure.

The guarantee: no request the schema allows, and none of the malformed ones, makes the
service answer 5xx. Bad input is the client's fault and must be a 4xx problem+json;
a 5xx means a handler let an unexpected exception escape (a missing validation, an
unguarded division, a `None` nobody expected, a dependency error not mapped to a
problem). On a 2xx the response must also match what the schema documents: its
content type, its body schema and its documented headers, so a handler that
bypasses its response model is caught too.

What it deliberately leaves out, and why: conformance checks on error responses give
false failures for every lab service. The app factory answers errors as
`application/problem+json` while FastAPI documents `application/json` bodies of
another shape, and 400 (an unparsable body), 401 (the admin guard) and 404 are never
in FastAPI's documented status codes. So `status_code_conformance` is not run at all,
and the content-type, body and header checks run on 2xx responses only; on errors
only `not_a_server_error` judges.

Bounded and repeatable: at most `max_examples` requests per operation (25 by default)
plus shrinking, Hypothesis derandomized (the same requests on every run) and with no
example database. Hypothesis still caches Unicode tables and source constants on disk,
by default in `./.hypothesis/`; for the run that storage is pointed at the user's cache
(`$XDG_CACHE_HOME/systems-lab/hypothesis`, else `~/.cache/...`), outside the working
tree, where it survives so only the first run pays the seconds of building the tables.
Only the fuzzing phase runs (not schemathesis' examples, coverage or stateful phases,
which its CLI adds).
"""

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure
from schemathesis import Case, CheckContext, CheckFunction, Config, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.errors import FailureGroup
from schemathesis.openapi import from_url
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)

from labs.web.serve import serve_in_thread

DEFAULT_MAX_EXAMPLES = 25
_REQUEST_TIMEOUT_S = 10.0
_SUCCESS = range(200, 300)


def _on_success_only(check: CheckFunction) -> CheckFunction:
    """Run `check` on 2xx responses only: errors are problem+json, unlike FastAPI's docs."""

    @functools.wraps(check)
    def gated(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
        if response.status_code not in _SUCCESS:
            return None
        return check(ctx, response, case)

    return gated


CHECKS: tuple[CheckFunction, ...] = (
    not_a_server_error,
    _on_success_only(content_type_conformance),
    _on_success_only(response_schema_conformance),
    _on_success_only(response_headers_conformance),
)


@dataclass(frozen=True)
class FuzzReport:
    """What a passing run did: requests sent per operation (`"GET /v1/servers"`)."""

    requests: dict[str, int] = field(default_factory=dict)

    @property
    def operations(self) -> set[str]:
        """The operations that were fuzzed."""
        return set(self.requests)


class FuzzFailedError(AssertionError):
    """Some operations answered 5xx (or broke their documented 2xx contract)."""

    def __init__(self, failures: Mapping[str, str], report: FuzzReport) -> None:
        """Keep each failing operation's report; the message lists them all."""
        self.failures = dict(failures)
        self.report = report
        lines = [f"{len(self.failures)} of {len(report.requests)} operations failed fuzzing:"]
        lines += [f"\n=== {label}\n{detail.strip()}" for label, detail in self.failures.items()]
        super().__init__("\n".join(lines))


class _CaseFailedError(AssertionError):
    """One request failed its checks; an Exception, so Hypothesis shrinks it.

    Schemathesis raises `FailureGroup`, a `BaseExceptionGroup` that is not an `Exception`,
    and Hypothesis lets non-Exceptions escape without shrinking or reporting them.
    """


def fuzz_app(
    app: FastAPI,
    *,
    headers: Mapping[str, str] | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> FuzzReport:
    """Serve `app` over HTTP and fuzz every operation of its OpenAPI schema.

    Args:
        app: The service, built as its test would build it (its lifespan runs here).
        headers: Sent with every request, e.g. `{"Authorization": "Bearer <token>"}`.
        max_examples: Generated requests per operation, before shrinking a failure.

    Returns:
        The requests sent per operation, when every response passed.

    Raises:
        FuzzFailedError: naming each failing operation, its smallest failing request and
            a curl command that reproduces it.
    """
    fixed_headers = dict(headers or {})
    failures: dict[str, str] = {}
    requests: dict[str, int] = {}
    with serve_in_thread(app) as base_url:
        schema = from_url(f"{base_url}{app.openapi_url}", config=Config())
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                failures[result.err().label] = str(result.err())
                continue
            operation = result.ok()
            strategy = st.one_of(
                [
                    operation.as_strategy(generation_mode=mode, headers=fixed_headers)
                    for mode in GenerationMode
                ]
            )
            requests[operation.label] = 0
            try:
                _fuzz_operation(strategy, base_url, max_examples, requests, operation.label)
            except (_CaseFailedError, FlakyFailure) as exc:
                failures[operation.label] = _describe(exc)
    report = FuzzReport(requests)
    if failures:
        raise FuzzFailedError(failures, report)
    return report


def _fuzz_operation(
    strategy: st.SearchStrategy[Case[Any]],
    base_url: str,
    max_examples: int,
    requests: dict[str, int],
    label: str,
) -> None:
    @settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        report_multiple_bugs=False,
        # A cold cache makes the first draw build Unicode tables: slow once, not a bug.
        suppress_health_check=(HealthCheck.too_slow,),
        verbosity=Verbosity.quiet,
        print_blob=False,
    )
    @given(case=strategy)
    def check_one(case: Case[Any]) -> None:
        requests[label] += 1
        response = case.call(base_url=base_url, timeout=_REQUEST_TIMEOUT_S)
        try:
            case.validate_response(response, checks=list(CHECKS))
        except FailureGroup as group:
            raise _CaseFailedError(group.message) from None

    check_one()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "\n".join(_describe(inner) for inner in exc.exceptions)
    return str(exc)
