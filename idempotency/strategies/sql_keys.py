"""Key records kept in the payment's own PostgreSQL transaction (`db-unique` and `outbox`).

Pattern: the request's transaction first takes the key scope's advisory lock with
`pg_try_advisory_xact_lock` — taken at once, or refused at once (409): a duplicate
never queues behind the first request's provider call — then reads the record under
it, and lets `domain.decide()` answer (replay or 422). A new request does its work and
inserts the finished record (the primary key on (principal, route, key) backs the
lock up) in the same transaction, so the record exists exactly when the payment does.

Guarantee: the lock is PostgreSQL's, for the transaction: a crash, a SIGKILL or a lost
connection ends the transaction and releases it, so no record is ever stuck in
progress. The price is a pooled connection held for the whole request, provider call
included.
"""

from sqlalchemy.ext.asyncio import AsyncConnection

from idempotency.domain import KeyInFlightError, decide
from idempotency.store import try_lock_scope
from idempotency.strategies.base import Answer, PaymentCommand, Toolkit, replay_of

RETRY_AFTER_S = 1
"""What a 409 suggests: the first request holds the lock for one provider call."""


async def lock_or_replay(
    kit: Toolkit, conn: AsyncConnection, command: PaymentCommand
) -> Answer | None:
    """Lock the key's scope in `conn`'s transaction; return its replay if it has one."""
    scope = command.require_key()
    if not await try_lock_scope(conn, scope):
        raise KeyInFlightError(RETRY_AFTER_S)
    found = await kit.store.read_key(conn, scope, kit.now())
    return replay_of(decide(None if found is None else found.record, command.request.fingerprint()))


async def remember(
    kit: Toolkit, conn: AsyncConnection, command: PaymentCommand, payment_id: str, answer: Answer
) -> None:
    """Record the key as finished with `answer`, in `conn`'s transaction."""
    await kit.store.claim_key(
        conn,
        command.require_key(),
        command.request,
        payment_id,
        kit.now(),
        finished=(answer.stored(), kit.key_ttl),
    )
