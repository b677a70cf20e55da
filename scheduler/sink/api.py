"""The webhook sink's HTTP contract.

- `POST /hooks/{name}` with an `Idempotency-Key` header: a delivery. 200 with the
  key's tally, or 503 problem+json naming the injected fault. Recorded before the
  answer: a 2xx means the delivery is in the ledger.
- `GET /v1/received`: the ledger's totals; `DELETE /v1/received` (admin): reset them.
- `GET /v1/faults`: the fault plan in force; `PUT /v1/faults` (admin): replace it
  (`labs.faults`; the sink applies the plan itself, so refused deliveries are recorded).
Missing key, bad hook name or invalid plan: 422; missing or wrong admin token: 401.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response, status
from prometheus_client import Counter
from pydantic import BaseModel

from labs.faults import FaultInjector
from labs.web import AdminDep, ProblemError
from scheduler.sink.ledger import Ledger, Received

router = APIRouter(tags=["webhook sink"])
HOOK_NAME = r"^[A-Za-z0-9._-]{1,64}$"
MAX_KEY_LENGTH = 256


@dataclass(frozen=True)
class Sink:
    """What the routes work with, built in the app's lifespan."""

    faults: FaultInjector
    ledger: Ledger
    deliveries: Counter
    """Deliveries by the status answered."""
    duplicates: Counter
    """2xx deliveries of an idempotency key that had one already."""


async def get_sink(request: Request) -> Sink:
    """Return the app's sink (built in the lifespan)."""
    sink: Sink = request.app.state.sink
    return sink


SinkDep = Annotated[Sink, Depends(get_sink)]


class Delivery(BaseModel):
    """A delivery accepted, and how often its key has been accepted so far."""

    hook: str
    idempotency_key: str
    deliveries: int
    duplicate: bool


@router.post(
    "/hooks/{name}",
    summary="Receive a delivery",
    responses={503: {"description": "Refused by an injected fault"}},
)
async def receive(
    name: Annotated[str, Path(pattern=HOOK_NAME)],
    idempotency_key: Annotated[
        str, Header(alias="Idempotency-Key", min_length=1, max_length=MAX_KEY_LENGTH)
    ],
    sink: SinkDep,
) -> Delivery:
    """Apply the fault plan, record the delivery, then answer 200 or 503."""
    fault = await sink.faults.apply()
    code = status.HTTP_200_OK if fault is None else status.HTTP_503_SERVICE_UNAVAILABLE
    deliveries = await sink.ledger.record(name, idempotency_key, code)
    sink.deliveries.labels(str(code)).inc()
    if fault is not None:
        raise ProblemError(code, "Injected fault", f"the sink is injecting {fault}", fault=fault)
    if deliveries > 1:
        sink.duplicates.inc()
    return Delivery(
        hook=name, idempotency_key=idempotency_key, deliveries=deliveries, duplicate=deliveries > 1
    )


@router.get("/v1/received", summary="What the sink has received")
async def received(sink: SinkDep) -> Received:
    """Deliveries, distinct keys, duplicates, and counts by hook and by status."""
    return await sink.ledger.received()


@router.delete(
    "/v1/received",
    status_code=204,
    summary="Reset the ledger",
    responses={401: {"description": "Admin token required"}},
)
async def reset_received(sink: SinkDep, _: AdminDep) -> Response:
    """Forget every delivery."""
    await sink.ledger.reset()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
