"""The payments domain, and the one place that decides what a repeated key means.

Pattern: everything here is pure (no I/O), so every strategy shares it and unit tests
cover it without servers. A payment request is validated once (`PaymentRequest`); its
*fingerprint* is the SHA-256 of its canonical JSON (keys sorted, no whitespace, the
defaults filled in), so `{"amount": 5, ...}` sent twice with keys in another order is
the same request. An idempotency key is *scoped* to the principal and the route
(`ScopedKey`): Alice's key `k1` on `/v1/db-unique/payments` never meets Bob's `k1`, nor
her own `k1` on another route.

Guarantee: `decide()` is the only code that turns a stored key record into an answer,
following the IETF draft "The Idempotency-Key HTTP Header Field" and Stripe: a key
reused with another payload is refused (422) whatever the record's state; a finished
record is replayed; a record whose owner is still at work is a conflict (409); a
record whose owner was abandoned (a lock past its timeout) is resumed. Strategies
differ only in where the record lives and how it is locked.

Failure it handles: the recurring bugs of idempotency libraries — keys not bound to
the payload (the fingerprint), a result cached before validation (a request reaches
`decide()` only once it validated), and refunds beyond the capture (`check_refund`).
"""

import dataclasses
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_AMOUNT = 99_999_999
"""Largest amount in minor units (999,999.99 in a two-decimal currency)."""
MAX_KEY_LENGTH = 255


class StrategyName(StrEnum):
    """The six idempotency strategies, each served at `/v1/{name}/payments`."""

    NONE = "none"
    DB_UNIQUE = "db-unique"
    REDIS_LOCK = "redis-lock"
    RECOVERY_POINTS = "recovery-points"
    OUTBOX = "outbox"
    NATURAL_KEY = "natural-key"


class PaymentStatus(StrEnum):
    """Where a payment stands: pending until the provider has answered."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class CrashPoint(StrEnum):
    """Where a process may be told to SIGKILL itself while handling a payment."""

    BEFORE_CHARGE = "before_charge"
    AFTER_CHARGE = "after_charge"
    """The provider answered; our transaction is not committed."""
    AFTER_COMMIT = "after_commit"
    """Everything is recorded; the answer is not sent."""


class PaymentRequest(BaseModel):
    """A request to charge a customer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: int = Field(gt=0, le=MAX_AMOUNT, description="Minor units (cents).")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, upper case.")
    customer: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=200, description="Kept in the ledger.")

    def fingerprint(self) -> str:
        """Return the SHA-256 of the request's canonical JSON."""
        return fingerprint(self.model_dump(mode="json"))


@dataclass(frozen=True)
class Payment:
    """A payment as the API records it."""

    id: str
    principal: str
    strategy: StrategyName
    request: PaymentRequest
    status: PaymentStatus
    created_at: datetime
    charge_id: int | None = None
    """The provider's charge, once it answered."""
    refunded: int = 0

    @classmethod
    def new(
        cls, principal: str, strategy: StrategyName, request: PaymentRequest, now: datetime
    ) -> "Payment":
        """Return a pending payment with a fresh id."""
        return cls(
            id=f"pay_{uuid.uuid4().hex}",
            principal=principal,
            strategy=strategy,
            request=request,
            status=PaymentStatus.PENDING,
            created_at=now,
        )

    def charged(self, charge_id: int | None) -> "Payment":
        """Return this payment settled: succeeded with the charge, or failed without one."""
        status = PaymentStatus.FAILED if charge_id is None else PaymentStatus.SUCCEEDED
        return dataclasses.replace(self, status=status, charge_id=charge_id)


def canonical_json(value: Any) -> str:
    """Return `value` as JSON with sorted keys and no insignificant whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(value: Any) -> str:
    """Return the hex SHA-256 of `value`'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def parse_key(raw: str) -> str:
    """Return the key of an `Idempotency-Key` header: a bare token or an sf-string.

    The draft defines the value as a structured-field string (`"abc"`); most clients
    (and Stripe) send it bare. Both are accepted and mean the same key.
    """
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':  # noqa: PLR2004 - the two quotes
        return raw[1:-1]
    return raw


@dataclass(frozen=True)
class ScopedKey:
    """An idempotency key in its scope: who sent it, and to which route."""

    principal: str
    route: str
    key: str

    def __str__(self) -> str:
        """Return one string naming the scope, for locks and cache keys."""
        return f"{self.principal}\x1f{self.route}\x1f{self.key}"

    def downstream(self) -> str:
        """Return the key to send the provider: derived from this one, stable across retries."""
        return "idem_" + hashlib.sha256(str(self).encode()).hexdigest()[:40]


@dataclass(frozen=True)
class StoredResponse:
    """The answer a key's first request got, replayed to every retry."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


class RecordState(StrEnum):
    """What a key record says about the request that created it."""

    IN_FLIGHT = "in_flight"
    """Its owner is at work (a live lock)."""
    ABANDONED = "abandoned"
    """Its owner stopped before finishing (a lock past its timeout): the work may resume."""
    FINISHED = "finished"


@dataclass(frozen=True)
class KeyRecord:
    """A key record as a strategy's store holds it."""

    fingerprint: str
    state: RecordState
    response: StoredResponse | None = None
    retry_after_s: int = 1
    """For a record in flight: when a retry may find it finished or abandoned."""


class Action(StrEnum):
    """What the strategy does with a request, once its key's record is read."""

    NEW = "new"
    RESUME = "resume"
    REPLAY = "replay"


@dataclass(frozen=True)
class Decision:
    """The verdict on a keyed request: act on it, or replay `response`."""

    action: Action
    response: StoredResponse | None = None


class KeyReusedError(Exception):
    """The key was first used with another payload (422)."""


class KeyInFlightError(Exception):
    """A request with the key is being processed now (409)."""

    def __init__(self, retry_after_s: int) -> None:
        """Suggest a retry after `retry_after_s` seconds."""
        super().__init__("a request with this idempotency key is in flight")
        self.retry_after_s = retry_after_s


def decide(record: KeyRecord | None, request_fingerprint: str) -> Decision:
    """Return what a request with this key must do, or raise its 409 or 422.

    A payload mismatch is reported first, whatever the state: the client has a bug,
    and waiting for the first request would not fix it.
    """
    if record is None:
        return Decision(Action.NEW)
    if record.fingerprint != request_fingerprint:
        raise KeyReusedError("the idempotency key was used with a different payload")
    if record.state is RecordState.FINISHED:
        return Decision(Action.REPLAY, record.response)
    if record.state is RecordState.IN_FLIGHT:
        raise KeyInFlightError(record.retry_after_s)
    return Decision(Action.RESUME)


class RefundTooLargeError(Exception):
    """A refund would take back more than is left of the capture (422)."""


def check_refund(captured: int, refunded: int, amount: int) -> None:
    """Raise unless `amount` fits in what is left of the capture."""
    left = captured - refunded
    if amount > left:
        raise RefundTooLargeError(f"{amount} exceeds the {left} left to refund of {captured}")
