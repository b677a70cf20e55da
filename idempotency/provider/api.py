"""The payment provider's HTTP contract.

- `POST /charges` with an optional `Idempotency-Key` (the caller's downstream key):
  201 with the charge; the same key again: 200 with the original charge and
  `Idempotent-Replayed: true`; the same key with another payload: 422; a declined
  card (a customer id starting `declined`): 402.
- `POST /refunds` `{"charge_id", "amount"}`: 201; more than the charge minus its
  refunds: 422; an unknown charge: 404.
- `GET /charges?after=<id>&limit=<n>`: the ledger of truth, in id order, with `next`
  to continue from (null on the last page). `DELETE /charges` (admin): reset it.
- `GET /v1/faults`, `PUT /v1/faults` (admin): the fault plan, applied to every `POST`.
Errors are problem+json.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from idempotency.domain import MAX_AMOUNT, MAX_KEY_LENGTH, RefundTooLargeError
from idempotency.provider.ledger import (
    CardDeclinedError,
    ChargeKeyReusedError,
    ChargeRequest,
    Ledger,
    UnknownChargeError,
)
from labs.web import AdminDep, ProblemError

MAX_PAGE = 10_000
router = APIRouter(tags=["payment provider"])

Amount = Annotated[int, Field(gt=0, le=MAX_AMOUNT, description="Minor units.")]


class ChargeIn(BaseModel):
    """A charge to execute."""

    model_config = ConfigDict(extra="forbid")

    amount: Amount
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    customer: str = Field(min_length=1, max_length=64)
    reference: str = Field(min_length=1, max_length=64, description="The caller's payment id.")
    description: str = Field(default="", max_length=200)


class ChargeOut(BaseModel):
    """A charge the provider executed."""

    id: int
    amount: int
    currency: str
    customer: str
    reference: str
    description: str
    idempotency_key: str | None
    created_at: datetime


class ChargePage(BaseModel):
    """Charges in id order, and the id to continue after (null when this page is the last)."""

    charges: list[ChargeOut]
    next: int | None


class RefundIn(BaseModel):
    """A refund of part of a charge."""

    model_config = ConfigDict(extra="forbid")

    charge_id: int = Field(ge=1)
    amount: Amount


class RefundOut(BaseModel):
    """A refund the provider executed."""

    id: int
    charge_id: int
    amount: int
    created_at: datetime


async def get_ledger(request: Request) -> Ledger:
    """Return the app's ledger (built in the lifespan)."""
    ledger: Ledger = request.app.state.ledger
    return ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


@router.post(
    "/charges",
    status_code=status.HTTP_201_CREATED,
    summary="Execute a charge",
    responses={
        200: {"model": ChargeOut, "description": "Replayed: the charge this key made"},
        402: {"description": "Card declined"},
        422: {"description": "Invalid, or the key was used for another charge"},
    },
)
async def create_charge(
    body: ChargeIn,
    ledger: LedgerDep,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=MAX_KEY_LENGTH)
    ] = None,
) -> ChargeOut:
    """Charge once per key: a repeated key returns the first charge."""
    try:
        row, replayed = await ledger.charge(ChargeRequest(**body.model_dump()), idempotency_key)
    except CardDeclinedError as exc:
        raise ProblemError(402, "Card declined", str(exc)) from None
    except ChargeKeyReusedError as exc:
        raise ProblemError(422, "Idempotency key reused", str(exc)) from None
    if replayed:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return ChargeOut.model_validate(dict(row))


@router.post(
    "/refunds",
    status_code=status.HTTP_201_CREATED,
    summary="Refund part of a charge",
    responses={404: {"description": "No such charge"}, 422: {"description": "Too large"}},
)
async def create_refund(body: RefundIn, ledger: LedgerDep) -> RefundOut:
    """Refund `amount` of a charge, never more than is left of it."""
    try:
        row = await ledger.refund(body.charge_id, body.amount)
    except UnknownChargeError as exc:
        raise ProblemError(404, "Unknown charge", str(exc)) from None
    except RefundTooLargeError as exc:
        raise ProblemError(422, "Refund exceeds the charge", str(exc)) from None
    return RefundOut.model_validate(dict(row))


@router.get("/charges", summary="The ledger of truth: every charge executed, in id order")
async def list_charges(
    ledger: LedgerDep,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1_000,
) -> ChargePage:
    """Up to `limit` charges with ids above `after`; `next` continues."""
    rows = await ledger.page(after, limit)
    charges = [ChargeOut.model_validate(dict(row)) for row in rows]
    return ChargePage(charges=charges, next=charges[-1].id if len(charges) == limit else None)


@router.delete(
    "/charges",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Reset the ledger",
    responses={401: {"description": "Admin token required"}},
)
async def reset_charges(ledger: LedgerDep, _: AdminDep) -> Response:
    """Forget every charge and refund."""
    await ledger.reset()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
