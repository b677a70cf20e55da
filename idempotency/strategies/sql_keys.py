"""Key records kept in the payment's own PostgreSQL transaction (`db-unique` and `outbox`).

Pattern: the request's transaction first takes the key scope's advisory lock with
`pg_try_advisory_xact_lock` — taken at once, or refused at once (409): a duplicate
never queues behind the first request's provider call — then reads the record under
it, and lets `domain.decide()` answer (replay or 422). A new request does the
strategy's work and inserts the finished record (the primary key on (principal,
route, key) backs the lock up) in the same transaction, so the record exists exactly
when the payment does.

Guarantee: the lock is PostgreSQL's, for the transaction: a crash, a SIGKILL or a lost
connection ends the transaction and releases it, so no record is ever stuck in
progress. The price is a pooled connection held for the whole request, provider call
included.
"""

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncConnection

from idempotency.domain import KeyInFlightError, Payment, decide
from idempotency.store import try_lock_scope
from idempotency.strategies.base import Answer, PaymentCommand, replay_of
from idempotency.toolkit import Toolkit

RETRY_AFTER_S = 1
"""What a 409 suggests: the first request holds the lock for one provider call."""
Work = Callable[[AsyncConnection, Payment], Awaitable[Answer]]


async def in_keyed_transaction(kit: Toolkit, command: PaymentCommand, work: Work) -> Answer:
    """Lock the key, replay it, or run `work` on a new payment and record the key with it."""
    scope = command.require_key()
    async with kit.engine.begin() as conn:
        if not await try_lock_scope(conn, scope):
            raise KeyInFlightError(RETRY_AFTER_S)
        found = await kit.store.read_key(conn, scope, kit.now())
        fingerprint = command.request.fingerprint()
        replay = replay_of(decide(None if found is None else found.record, fingerprint))
        if replay is not None:
            return replay
        payment = Payment.new(command.principal, command.strategy, command.request, kit.now())
        answer = await work(conn, payment)
        finished = (answer.stored(), kit.key_ttl)
        await kit.store.claim_key(
            conn, scope, command.request, payment.id, kit.now(), finished=finished
        )
    kit.committed()
    return answer
