"""The interface every strategy implements, and the charging step they share.

Pattern: a strategy is an adapter with one method, `create_payment(command) ->
Answer`. The API has validated the request and, for a strategy that `takes_key`,
scoped its `Idempotency-Key` before calling it; the strategy decides where the key's
record lives and how it is locked, and asks `domain.decide()` what the record means.
It raises `KeyReusedError` (422), `KeyInFlightError` (409) or
`ProviderUnavailableError` (502) and the API answers them; everything else is an
`Answer` the API sends as it is.

Strategies work with a `Toolkit` (`idempotency.toolkit`), whose `charge` is the one way
a strategy calls the provider synchronously, so every strategy passes the same named
crash points.
"""

from dataclasses import dataclass, field
from typing import Any, Protocol

from idempotency.domain import (
    Action,
    Decision,
    Payment,
    PaymentRequest,
    ScopedKey,
    StoredResponse,
    StrategyName,
)
from idempotency.models import payment_body

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
