"""`db-unique`: the key record is a unique row written in the payment's transaction.

Pattern (`sql_keys`): one PostgreSQL transaction takes the key scope's advisory lock,
reads the record (replay or 422), charges the provider, inserts the payment and the
finished record with its response, and commits. A duplicate in flight gets 409 at
once.

What it survives: a crash anywhere before the commit rolls everything back and frees
the key, so nothing is ever stuck; after the commit, a retry replays. What it does not:
the charge is an external effect outside the transaction. A crash (or a lost
connection to PostgreSQL) after the provider charged and before the commit rolls back
our record of it but not the charge, and the retry charges again — one duplicate per
`after_charge` crash. It sends the provider no key of its own on purpose, to show
exactly that; `recovery-points` is this strategy plus a derived downstream key and
recovery points.
"""

from sqlalchemy.ext.asyncio import AsyncConnection

from idempotency.domain import Payment, StrategyName
from idempotency.strategies.base import Answer, PaymentCommand
from idempotency.strategies.sql_keys import in_keyed_transaction
from idempotency.toolkit import Toolkit


class DbUnique:
    """A unique key row in the payment's transaction, with the response stored."""

    name = StrategyName.DB_UNIQUE
    takes_key = True
    summary = (
        "a unique (principal, route, key) row in the payment's transaction; "
        "a crash between the charge and the commit charges twice"
    )

    def __init__(self, kit: Toolkit) -> None:
        """Work with `kit`."""
        self._kit = kit

    async def create_payment(self, command: PaymentCommand) -> Answer:
        """Lock the key, replay it or charge, and commit the payment with the key's record."""
        return await in_keyed_transaction(self._kit, command, self._charge)

    async def _charge(self, conn: AsyncConnection, payment: Payment) -> Answer:
        payment = await self._kit.charge(payment, downstream_key=None)
        await self._kit.store.insert_payment(conn, payment)
        return Answer.created(payment)
