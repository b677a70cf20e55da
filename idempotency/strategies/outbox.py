"""`outbox`: the payment, its key and an event in one transaction; a consumer charges.

Pattern: the request's transaction does what `db-unique` does with the key (advisory
lock, replay or 422, finished record) but charges nobody: it records a *pending*
payment and appends a `payment.requested` event to the transactional outbox
(`labs.outbox`), then answers 202 with `Location: /v1/payments/{id}`. The API's relay
publishes the event to Kafka at least once; a charger (`idempotency.charger`) charges
the provider with the payment id as the downstream key and, in one transaction, settles
the payment and records the event as processed.

What it survives: every crash. The API has made no external call when it commits; a
relay that dies mid-batch publishes again (the charger dedupes on the event id); a
charger that dies after the provider charged and before its commit gets the event
again and charges again with the same downstream key — a replay at the provider. What
it costs: the client learns the outcome later (poll the `Location`), a replay returns
the original 202 with `pending` (the IETF draft replays the first response, not the
payment's state), and a broker and a consumer process to run.
"""

from sqlalchemy.ext.asyncio import AsyncConnection

from idempotency.domain import Payment, StrategyName
from idempotency.events import payment_requested
from idempotency.models import payment_body
from idempotency.strategies.base import Answer, PaymentCommand
from idempotency.strategies.sql_keys import in_keyed_transaction
from idempotency.toolkit import Toolkit


class OutboxCharge:
    """A pending payment and its outbox event, committed with the key; charged by a consumer."""

    name = StrategyName.OUTBOX
    takes_key = True
    summary = (
        "the payment, its key and an outbox event in one transaction, 202 at once; an "
        "idempotent consumer charges with the payment id as the downstream key"
    )

    def __init__(self, kit: Toolkit) -> None:
        """Work with `kit`."""
        self._kit = kit

    async def create_payment(self, command: PaymentCommand) -> Answer:
        """Lock the key, replay it or commit a pending payment with its event; answer 202."""
        return await in_keyed_transaction(self._kit, command, self._enqueue)

    async def _enqueue(self, conn: AsyncConnection, payment: Payment) -> Answer:
        kit = self._kit
        await kit.store.insert_payment(conn, payment)
        await kit.store.tables.outbox.append(conn, payment_requested(kit.settings.topic, payment))
        return Answer(202, payment_body(payment), {"Location": f"/v1/payments/{payment.id}"})
