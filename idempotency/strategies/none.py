"""`none`: the baseline. Every request charges; a retry is a new payment.

Pattern: charge, then record the payment. Guarantee: none beyond the provider's own
ledger — a client that retries after a lost answer (a timeout, a dropped connection,
a crash of ours after the charge) pays twice. It is here to measure what the other
five strategies save.
"""

from idempotency.domain import Payment, StrategyName
from idempotency.strategies.base import Answer, PaymentCommand
from idempotency.toolkit import Toolkit


class NoIdempotency:
    """Charge on every request."""

    name = StrategyName.NONE
    takes_key = False
    summary = "the baseline: every request charges; a retry after a lost answer pays twice"

    def __init__(self, kit: Toolkit) -> None:
        """Work with `kit`."""
        self._kit = kit

    async def create_payment(self, command: PaymentCommand) -> Answer:
        """Charge, record the payment, answer 201."""
        kit = self._kit
        payment = Payment.new(command.principal, self.name, command.request, kit.now())
        payment = await kit.charge(payment, downstream_key=None)
        async with kit.engine.begin() as conn:
            await kit.store.insert_payment(conn, payment)
        kit.committed()
        return Answer.created(payment)
