"""A hop's HTTP contract.

- `POST /v1/work` `{"request_id", "route"}`: do this hop's part, then call the first
  hop named in `route` with the rest of it (through that edge's policies); the last
  hop does the work itself (a side effect in the ledger, if it has one). Headers:
  `X-Deadline-Ms` (remaining budget), `Idempotency-Key` (passed down). 200 with each
  hop's name and the deadline it received; 503 problem+json when a policy refused or
  gave up (marked `X-Do-Not-Retry`), 502 when the dependency failed, 504 when the
  deadline had passed. Faults (`labs.faults`) apply to this route only.
- `GET /v1/stats`; `DELETE /v1/stats` (admin): counts since the last reset.
- `GET /v1/policies`; `PUT /v1/policies` (admin): `{dependency: EdgePolicy}`,
  replacing every edge's policies (fresh breakers, budgets and bulkheads).
- `GET/PUT /v1/faults`: the fault plan (`labs.faults`).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Header, Request, Response, status
from pydantic import BaseModel, Field

from labs.clock import Clock
from labs.failsim.chain.client import DO_NOT_RETRY_HEADER, DependencyClient
from labs.failsim.chain.ledger import Ledger
from labs.failsim.chain.stats import Arrivals, HopStats
from labs.failsim.config import EdgePolicy
from labs.failsim.policies import (
    DEADLINE_HEADER,
    CallRejectedError,
    Deadline,
    DependencyFailedError,
    Rejection,
)
from labs.web import AdminDep, ProblemError

router = APIRouter(tags=["failure simulation"])
NAME = r"^[a-z][a-z0-9-]{0,31}$"
MAX_ROUTE = 8


@dataclass
class Hop:
    """A hop's state, built in the app's lifespan."""

    name: str
    clock: Clock
    downstream: dict[str, str]
    default_deadline_s: float
    make_client: Callable[[httpx.AsyncClient, str, EdgePolicy, int], DependencyClient]
    """Builds an edge's client on a pool: the pool, base URL, policy, seed."""
    make_pool: Callable[[], httpx.AsyncClient]
    ledger: Ledger | None
    arrivals: Arrivals
    pool: httpx.AsyncClient | None = None
    clients: dict[str, DependencyClient] = field(default_factory=dict)
    stats: HopStats = field(init=False)

    def __post_init__(self) -> None:
        """Start with zero counts (`configure` builds the edges)."""
        self.stats = HopStats(name=self.name)

    async def configure(self, policies: dict[str, EdgePolicy]) -> None:
        """Replace every edge's client, on a new shared pool; edges not named get the default.

        A new pool per configuration: httpcore 1.0.9 can leak a pool slot when a request
        waiting for a connection is cancelled (encode/httpcore#1093), and a timed-out
        attempt is cancelled; a run must not inherit the slots an earlier run leaked.
        """
        old, self.pool = self.pool, self.make_pool()
        self.clients = {
            name: self.make_client(self.pool, url, policies.get(name, EdgePolicy()), seed)
            for seed, (name, url) in enumerate(sorted(self.downstream.items()))
        }
        if old is not None:
            await old.aclose()

    async def close(self) -> None:
        """Close the pool."""
        if self.pool is not None:
            await self.pool.aclose()


def get_hop(request: Request) -> Hop:
    """Return the app's hop (built in the lifespan)."""
    hop: Hop = request.app.state.hop
    return hop


HopDep = Annotated[Hop, Depends(get_hop)]


class Work(BaseModel):
    """A request travelling down the chain."""

    request_id: str = Field(min_length=1, max_length=128)
    route: list[Annotated[str, Field(pattern=NAME)]] = Field(default=[], max_length=MAX_ROUTE)


class Visit(BaseModel):
    """One hop a request went through, and the deadline it arrived with."""

    name: str
    deadline_ms: int


class Done(BaseModel):
    """The work done: the hops in order, and the side effect if the last hop has one."""

    hops: list[Visit]
    effect_id: int | None = None
    replayed: bool = False


@router.post(
    "/v1/work",
    summary="Do this hop's part and pass the rest on",
    responses={
        502: {"description": "The dependency failed"},
        503: {"description": "A policy refused or gave up (X-Do-Not-Retry)"},
        504: {"description": "The deadline had passed"},
    },
)
async def work(
    body: Work,
    request: Request,
    hop: HopDep,
    deadline_ms: Annotated[str | None, Header(alias=DEADLINE_HEADER)] = None,
    key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=256)] = None,
) -> Done:
    """Check the deadline, then call on down the route or do the work here."""
    arrived: float = request.state.arrived
    deadline = Deadline.from_header(hop.clock, deadline_ms, hop.default_deadline_s, arrived)
    visit = Visit(name=hop.name, deadline_ms=int(deadline.header_value()))
    try:
        deadline.check()
        if body.route:
            answer = await _pass_on(hop, body, deadline, key)
            return Done.model_validate(answer | {"hops": [visit.model_dump(), *answer["hops"]]})
    except CallRejectedError as refused:
        raise _refusal(refused) from refused
    except DependencyFailedError as failed:
        headers = {} if failed.retryable else {DO_NOT_RETRY_HEADER: "dependency"}
        raise ProblemError(502, "Dependency failed", str(failed), headers=headers) from failed
    if hop.ledger is None:
        return Done(hops=[visit])
    effect = await hop.ledger.perform(body.request_id, key)
    return Done(hops=[visit], effect_id=effect.id, replayed=effect.replayed)


async def _pass_on(hop: Hop, body: Work, deadline: Deadline, key: str | None) -> dict[str, Any]:
    next_hop, *rest = body.route
    client = hop.clients.get(next_hop)
    if client is None:
        known = ", ".join(sorted(hop.clients)) or "none"
        raise ProblemError(422, "Unknown dependency", f"{hop.name} calls {known}, not {next_hop}")
    return await client.call(body.request_id, rest, deadline, key)


def _refusal(refused: CallRejectedError) -> ProblemError:
    code = 504 if refused.reason is Rejection.DEADLINE else 503
    return ProblemError(
        code,
        "Gave up" if code == 503 else "Deadline passed",  # noqa: PLR2004 - the status
        str(refused),
        headers={DO_NOT_RETRY_HEADER: refused.reason},
        reason=refused.reason,
    )


@router.get("/v1/stats", summary="Counts since the last reset")
async def read_stats(hop: HopDep) -> HopStats:
    """Requests received, each edge's requests, attempts and refusals, and the ledger."""
    update: dict[str, Any] = {
        "received": hop.arrivals.count,
        "edges": {name: client.stats for name, client in hop.clients.items()},
    }
    if hop.ledger is not None:
        update["side_effects"], update["distinct_requests"] = await hop.ledger.counts()
    return hop.stats.model_copy(update=update)


@router.delete(
    "/v1/stats",
    status_code=204,
    summary="Reset the counts and the ledger",
    responses={401: {"description": "Admin token required"}},
)
async def reset_stats(hop: HopDep, _: AdminDep) -> Response:
    """Zero every count and empty the ledger; policies keep their state."""
    hop.stats = HopStats(name=hop.name)
    hop.arrivals.count = 0
    for client in hop.clients.values():
        client.reset_stats()
    if hop.ledger is not None:
        await hop.ledger.reset()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/v1/policies", summary="Each edge's policies")
async def read_policies(hop: HopDep) -> dict[str, EdgePolicy]:
    """The policy in force on each edge."""
    return {name: client.policy for name, client in hop.clients.items()}


@router.put(
    "/v1/policies",
    summary="Replace the edges' policies",
    responses={401: {"description": "Admin token required"}, 422: {"description": "Bad edge"}},
)
async def change_policies(
    policies: dict[str, EdgePolicy], hop: HopDep, _: AdminDep
) -> dict[str, EdgePolicy]:
    """Put `policies` in force with fresh state; edges not named get one attempt."""
    unknown = set(policies) - set(hop.downstream)
    if unknown:
        detail = f"{hop.name} has no dependency {', '.join(sorted(unknown))}"
        raise ProblemError(422, "Unknown dependency", detail)
    await hop.configure(policies)
    return {name: client.policy for name, client in hop.clients.items()}
