"""Errors as RFC 9457 problem details (`application/problem+json`), for every service.

A handler raises `ProblemError`; validation failures, unknown routes and unexpected
exceptions are turned into the same shape, so clients parse one error format. An
unexpected exception is logged with its traceback and answered with a 500 that leaks
nothing.
"""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
_log = logging.getLogger("labs.web")


class ProblemError(Exception):
    """An error answered as problem+json with `status`, `title` and `detail`."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str = "about:blank",
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        """Describe the problem; `extensions` become extra members of the body."""
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = dict(headers or {})
        self.extensions = extensions


def problem_response(problem: ProblemError, instance: str | None = None) -> JSONResponse:
    """Render `problem` as a problem+json response."""
    body: dict[str, Any] = {"type": problem.type, "title": problem.title, "status": problem.status}
    if problem.detail:
        body["detail"] = problem.detail
    if instance:
        body["instance"] = instance
    body.update(jsonable_encoder(problem.extensions))
    return JSONResponse(
        body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON
    )


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)  # noqa: S101 - registered for this type only
    return problem_response(exc, request.url.path)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this type only
    problem = ProblemError(exc.status_code, exc.detail, headers=exc.headers)
    return problem_response(problem, request.url.path)


async def _on_invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
    errors = [
        {
            "loc": list(error.get("loc", ())),
            "msg": error.get("msg", ""),
            "type": error.get("type", ""),
        }
        for error in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    problem = ProblemError(422, "Invalid request", detail, errors=errors)
    return problem_response(problem, request.url.path)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    _log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    problem = ProblemError(500, "Internal error", "the service failed; the error is in its log")
    return problem_response(problem, request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of `app` as problem+json."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_invalid_request)
    app.add_exception_handler(Exception, _on_unexpected)
