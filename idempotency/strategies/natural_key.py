"""`natural-key`: no key from the client; a payment is identified by what it is.

Pattern: the payment's own fields — (principal, customer, amount, currency) — stand in
for a key, within a time window (`IDEMPOTENCY_NATURAL_KEY_WINDOW_S`). One transaction
takes an advisory lock on those fields (so concurrent identical requests queue rather
than race), looks for such a payment made within the window, and answers it (200,
`Idempotent-Replayed: true`) if there is one; else it charges and records the payment.

What it survives: client retries that carry no key at all, including after a lost
answer; concurrent duplicates (they merge). What it gets wrong, by construction: two
*genuine* orders that look the same — a customer buying the same thing twice in ten
minutes — are merged into one payment, and the second purchase is never charged. A
window short enough to avoid that misses slow retries; no window is right for both.
A crash between the charge and the commit charges twice, as with `db-unique` (the
provider is sent no key). The `Idempotency-Key` header is ignored.
"""

from datetime import timedelta

from idempotency.domain import Payment, StrategyName
from idempotency.models import payment_body
from idempotency.store import lock_scope
from idempotency.strategies.base import REPLAYED_HEADER, Answer, PaymentCommand
from idempotency.toolkit import Toolkit


class NaturalKey:
    """Payments with equal (principal, customer, amount, currency) within a window are one."""

    name = StrategyName.NATURAL_KEY
    takes_key = False
    summary = (
        "no key: (principal, customer, amount, currency) within a time window is one payment; "
        "merges genuine repeat orders"
    )

    def __init__(self, kit: Toolkit) -> None:
        """Work with `kit`."""
        self._kit = kit

    async def create_payment(self, command: PaymentCommand) -> Answer:
        """Answer the window's earlier payment like this one, or charge and record a new one."""
        kit = self._kit
        request = command.request
        natural = (command.principal, request.customer, str(request.amount), request.currency)
        window = timedelta(seconds=kit.settings.natural_key_window_s)
        async with kit.engine.begin() as conn:
            await lock_scope(conn, "\x1f".join((self.name, *natural)))
            now = kit.now()
            earlier = await kit.store.latest_repeat(conn, command.principal, request, now - window)
            if earlier is not None:
                return Answer(200, payment_body(earlier), {REPLAYED_HEADER: "true"})
            payment = Payment.new(command.principal, self.name, request, now)
            payment = await kit.charge(payment, downstream_key=None)
            await kit.store.insert_payment(conn, payment)
        kit.committed()
        return Answer.created(payment)
