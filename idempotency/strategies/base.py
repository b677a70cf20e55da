"""The interface every strategy implements, and the charging step they share.

Pattern: a strategy is an adapter with one method, `create_payment(command) ->
Answer`. The API has validated the request and, for a strategy that `takes_key`,
scoped its `Idempotency-Key` before calling it; the strategy decides where the key's
record lives and how it is locked, and asks `domain.decide()` what the record means.
It raises `KeyReusedError` (422), `KeyInFlightError` (409) or
`ProviderUnavailableError` (502) and the API answers them; everything else is an
`Answer` the API sends as it is.

`Toolkit.charge` is the one way a strategy calls the provider synchronously, so every
strategy passes the same named crash points: `before_charge`, `after_charge` (the
provider answered, nothing of ours committed) and, through `Toolkit.committed`,
`after_commit` (everything recorded, the answer not sent).
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from idempotency.domain import (
    Action,
    CrashPoint,
    Decision,
    Payment,
    PaymentRequest,
    ScopedKey,
    StoredResponse,
    StrategyName,
)
from idempotency.models import payment_body
from idempotency.provider_client import ProviderClient
from idempotency.settings import IdempotencySettings
from idempotency.store import PaymentStore
from labs.clock import Clock
from labs.faults import FaultInjector

REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True)
class PaymentCommand:
    """A validated request to create a payment, with its scoped key when one is taken."""

    principal: str
    strategy: StrategyName
    request: PaymentRequest
    key: ScopedKey | None = None

    def require_key(self) -> ScopedKey:
        """Return the scoped key (the API checks that keyed strategies get one)."""
        if self.key is None:
            raise ValueError(f"{self.strategy} takes an idempotency key and none was given")
        return self.key


@dataclass(frozen=True)
class Answer:
    """What the API sends back: a status, a JSON body and headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def created(cls, payment: Payment) -> "Answer":
        """Return the 201 for a payment made now."""
        return cls(201, payment_body(payment))

    @classmethod
    def replay(cls, stored: StoredResponse) -> "Answer":
        """Return a stored response again, marked as a replay."""
        return cls(stored.status, stored.body, stored.headers | {REPLAYED_HEADER: "true"})

    @property
    def replayed(self) -> bool:
        """Whether this answer was sent before, to an earlier request."""
        return self.headers.get(REPLAYED_HEADER) == "true"

    def stored(self) -> StoredResponse:
        """Return this answer as a key record keeps it."""
        return StoredResponse(self.status, self.body, self.headers)


def replay_of(decision: Decision) -> Answer | None:
    """Return the replay a decision calls for, or None when the request must act."""
    if decision.action is Action.REPLAY and decision.response is not None:
        return Answer.replay(decision.response)
    return None


@dataclass(frozen=True)
class Toolkit:
    """What strategies work with, built once by the app (or the charger)."""

    engine: AsyncEngine
    store: PaymentStore
    provider: ProviderClient
    faults: FaultInjector
    clock: Clock
    settings: IdempotencySettings

    def now(self) -> datetime:
        """Return the injected clock's wall time."""
        return datetime.fromtimestamp(self.clock.time(), UTC)

    @property
    def key_ttl(self) -> timedelta:
        """How long a finished key is replayed."""
        return timedelta(seconds=self.settings.key_ttl_s)

    async def charge(self, payment: Payment, downstream_key: str | None) -> Payment:
        """Charge the payment at the provider; return it settled (succeeded or failed)."""
        self.faults.reach(CrashPoint.BEFORE_CHARGE)
        charged = payment.charged(await self.provider.charge(payment, downstream_key))
        self.faults.reach(CrashPoint.AFTER_CHARGE)
        return charged

    def committed(self) -> None:
        """Mark the point where all is recorded and the answer is not yet sent."""
        self.faults.reach(CrashPoint.AFTER_COMMIT)


class Strategy(Protocol):
    """An idempotency strategy: where a key's record lives and how it is locked."""

    @property
    def name(self) -> StrategyName:
        """The strategy's route segment."""
        ...

    @property
    def takes_key(self) -> bool:
        """Whether requests must carry an `Idempotency-Key`."""
        ...

    @property
    def summary(self) -> str:
        """What the strategy does and what it survives, in one line."""
        ...

    async def create_payment(self, command: PaymentCommand) -> Answer:
        """Create (or replay) the payment the command asks for."""
        ...
