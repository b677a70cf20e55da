"""The rate-limit service's HTTP contract.

- `POST /v1/check`: 200 when allowed, 429 when denied, with the decision in the body
  and RateLimit headers (`Retry-After` on 429).
- `POST /v1/check/batch`: several checks decided all-or-nothing.
- `PUT|GET|DELETE /v1/rules/{name}`, `GET /v1/rules`: rules; writes need the admin token.
Unknown rule: 404; invalid body, rule or batch: 422; a cost the rule can never allow:
422, never a silent permanent deny. Errors are problem+json.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from labs.web import AdminDep, ProblemError
from rate_limiter.engine import (
    CheckRequest,
    CostTooHighError,
    DecidedBy,
    Engine,
    InvalidBatchError,
    UnknownRuleError,
    Verdict,
)
from rate_limiter.headers import rate_limit_headers, retry_after
from rate_limiter.rule_book import RuleBook
from rate_limiter.rules import MAX_UNITS, Rule, RuleName, RuleSpec

router = APIRouter(prefix="/v1", tags=["rate limiting"])
MAX_KEY_LENGTH = 512
MAX_BATCH = 32


async def get_engine(request: Request) -> Engine:
    """Return the app's engine (built in the lifespan).

    Async on purpose: FastAPI runs a plain `def` dependency on a worker thread, which
    cost about 0.6 ms of CPU per request here.
    """
    engine: Engine = request.app.state.engine
    return engine


async def get_rules(request: Request) -> RuleBook:
    """Return the app's rule book (built in the lifespan)."""
    rules: RuleBook = request.app.state.rules
    return rules


EngineDep = Annotated[Engine, Depends(get_engine)]
RulesDep = Annotated[RuleBook, Depends(get_rules)]


class CheckBody(BaseModel):
    """Charge `cost` units to `key` under `rule`."""

    rule: RuleName
    key: str = Field(min_length=1, max_length=MAX_KEY_LENGTH, examples=["{tenant-7}:user-3"])
    cost: int = Field(default=1, ge=1, le=MAX_UNITS)


class CheckResult(BaseModel):
    """A decision as clients see it."""

    allowed: bool
    limit: int
    remaining: int
    reset_after_ms: int
    retry_after_ms: int
    rule: str
    algorithm: str
    decided_by: DecidedBy
    shadow: bool

    @classmethod
    def of(cls, verdict: Verdict) -> "CheckResult":
        """Describe `verdict`."""
        decision = verdict.decision
        return cls(
            allowed=verdict.allowed,
            limit=decision.limit,
            remaining=decision.remaining,
            reset_after_ms=decision.reset_after_ms,
            retry_after_ms=0 if verdict.allowed else decision.retry_after_ms,
            rule=verdict.rule.name,
            algorithm=verdict.rule.algorithm,
            decided_by=verdict.decided_by,
            shadow=verdict.rule.shadow,
        )


class BatchBody(BaseModel):
    """Checks decided together: all are charged, or none."""

    checks: list[CheckBody] = Field(min_length=1, max_length=MAX_BATCH)


class BatchResult(BaseModel):
    """Whether the whole batch was allowed, and each check's decision."""

    allowed: bool
    results: list[CheckResult]


async def _decide(engine: Engine, bodies: list[CheckBody]) -> list[Verdict]:
    requests = [CheckRequest(body.rule, body.key, body.cost) for body in bodies]
    try:
        return await engine.check_all(requests)
    except UnknownRuleError as exc:
        raise ProblemError(404, "Unknown rule", f"no rule is called {exc.args[0]!r}") from None
    except CostTooHighError as exc:
        raise ProblemError(422, "Cost exceeds the rule's capacity", str(exc)) from None
    except InvalidBatchError as exc:
        raise ProblemError(422, "Invalid batch", str(exc)) from None


def _answer(verdicts: list[Verdict], body: BaseModel, headline: Verdict) -> JSONResponse:
    allowed = all(verdict.allowed for verdict in verdicts)
    headers = rate_limit_headers(headline.rule, headline.key, headline.decision)
    if not allowed:
        headers |= retry_after([v.decision for v in verdicts if not v.allowed])
    code = status.HTTP_200_OK if allowed else status.HTTP_429_TOO_MANY_REQUESTS
    return JSONResponse(body.model_dump(mode="json"), status_code=code, headers=headers)


_DENIED: dict[int | str, dict[str, Any]] = {
    429: {"model": CheckResult, "description": "Denied: the body says when to retry"}
}


@router.post("/check", response_model=CheckResult, responses=_DENIED, summary="Check one limit")
async def check(body: CheckBody, engine: EngineDep) -> JSONResponse:
    """Charge the cost if the rule allows it; 200 if allowed, 429 if not."""
    (verdict,) = await _decide(engine, [body])
    return _answer([verdict], CheckResult.of(verdict), verdict)


@router.post(
    "/check/batch",
    response_model=BatchResult,
    responses={429: {"model": BatchResult}},
    summary="Check several limits, all or nothing",
)
async def check_batch(body: BatchBody, engine: EngineDep) -> JSONResponse:
    """Charge every check only if all are allowed; headers describe the tightest one."""
    verdicts = await _decide(engine, body.checks)
    result = BatchResult(
        allowed=all(v.allowed for v in verdicts), results=[CheckResult.of(v) for v in verdicts]
    )
    headline = next(
        (v for v in verdicts if not v.allowed), min(verdicts, key=lambda v: v.decision.remaining)
    )
    return _answer(verdicts, result, headline)


@router.get("/rules", summary="List the rules")
async def list_rules(rules: RulesDep) -> list[Rule]:
    """Every rule, by name."""
    return rules.all()


@router.get(
    "/rules/{name}", summary="Read a rule", responses={404: {"description": "No such rule"}}
)
async def read_rule(name: RuleName, rules: RulesDep) -> Rule:
    """One rule."""
    rule = rules.get(name)
    if rule is None:
        raise ProblemError(404, "Unknown rule", f"no rule is called {name!r}")
    return rule


@router.put(
    "/rules/{name}",
    summary="Create or replace a rule",
    status_code=200,
    responses={
        201: {"model": Rule, "description": "Created"},
        401: {"description": "Admin token required"},
    },
)
async def put_rule(
    name: RuleName, spec: RuleSpec, rules: RulesDep, response: Response, _: AdminDep
) -> Rule:
    """Store the rule; 201 when new, 200 when replaced."""
    rule = Rule.named(name, spec)
    if await rules.put(rule):
        response.status_code = status.HTTP_201_CREATED
    return rule


@router.delete(
    "/rules/{name}",
    status_code=204,
    summary="Delete a rule",
    responses={401: {"description": "Admin token required"}, 404: {"description": "No such rule"}},
)
async def delete_rule(name: RuleName, rules: RulesDep, _: AdminDep) -> Response:
    """Delete the rule; its counters expire on their own."""
    if not await rules.delete(name):
        raise ProblemError(404, "Unknown rule", f"no rule is called {name!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
