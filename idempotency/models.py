"""The API's response and refund bodies (the payment request itself is `domain.PaymentRequest`)."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from idempotency.domain import MAX_AMOUNT, Payment, PaymentStatus, StrategyName


class PaymentOut(BaseModel):
    """A payment: `pending` until the provider answered, then `succeeded` or `failed`."""

    id: str
    status: PaymentStatus
    amount: int
    currency: str
    customer: str
    description: str
    strategy: StrategyName
    created_at: datetime

    @classmethod
    def of(cls, payment: Payment) -> "PaymentOut":
        """Return the payment's public view."""
        return cls(
            id=payment.id,
            status=payment.status,
            strategy=payment.strategy,
            created_at=payment.created_at,
            **payment.request.model_dump(),
        )


def payment_body(payment: Payment) -> dict[str, Any]:
    """Return a payment as the JSON body the API answers (and a key record replays)."""
    return PaymentOut.of(payment).model_dump(mode="json")


class RefundIn(BaseModel):
    """A refund of part of a payment."""

    model_config = ConfigDict(extra="forbid")

    amount: int = Field(gt=0, le=MAX_AMOUNT, description="Minor units.")


class RefundOut(BaseModel):
    """A refund the provider executed."""

    id: str
    payment_id: str
    amount: int
    created_at: datetime


class StrategyOut(BaseModel):
    """One strategy: whether it takes an `Idempotency-Key`, and for how long it keeps one."""

    name: StrategyName
    takes_key: bool
    key_ttl_s: int | None = Field(description="The key's expiry; null when no key is taken.")
    summary: str


class StrategiesOut(BaseModel):
    """Every strategy the API serves."""

    strategies: list[StrategyOut]
