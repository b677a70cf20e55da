"""`recovery-points`: Stripe's design as brandur's rocket-rides-atomic builds it.

Pattern: the request is cut into *atomic phases*, each one PostgreSQL transaction that
ends by recording how far the request got (its *recovery point*) on the key's row:

1. `started` — the key's row (locked: `locked_at = now`) and a pending payment, in one
   transaction. A key already there is replayed (finished), refused (409 while its
   lock is fresh, 422 for another payload), or *taken over* when its lock is older
   than `IDEMPOTENCY_RECOVERY_LOCK_TIMEOUT_S`: its owner died or stalls.
2. the foreign call — the charge, with a downstream key derived from ours
   (`ScopedKey.downstream()`), so running this step again is a replay at the provider,
   never a second charge; then, in one transaction, the payment settled and the key
   moved to `charge_created`.
3. `finished` — the response stored for replay and the lock released.

A request resumes from the last recovery point committed, whoever runs it: the
client's retry after the lock timed out, or the *completer*, a background task in
every API process that takes over abandoned keys (`FOR UPDATE SKIP LOCKED`, so several
completers share them) and runs their remaining phases. A provider failure gives the
lock back (502); the retry, or the completer, resumes from `started`.

What it survives: a crash at every point — before the charge (the phase reruns),
after the charge and before our commit (the rerun is a replay at the provider), after
the commit and before the answer (the retry replays). Concurrent duplicates get 409.
A stalled owner overtaken by a retry is harmless too: both calls carry one downstream
key. What it costs: three transactions and a row lock's worth of bookkeeping per
payment, and a 502 no longer means "not charged" — the completer may finish it, and a
retry with the same key tells the client how it ended.
"""

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from idempotency.domain import (
    KeyInFlightError,
    KeyRecord,
    Payment,
    RecordState,
    ScopedKey,
    StrategyName,
    decide,
)
from idempotency.provider_client import ProviderUnavailableError
from idempotency.store import KeyRow, RecoveryPoint
from idempotency.strategies.base import Answer, PaymentCommand, replay_of
from idempotency.toolkit import Toolkit

_log = logging.getLogger(__name__)
COMPLETER_BATCH = 100


class MissingPaymentError(LookupError):
    """A key names a payment that is not there (its phases were not atomic)."""


class RecoveryPoints:
    """Atomic phases with recovery points, a lock with a timeout, a derived downstream key."""

    name = StrategyName.RECOVERY_POINTS
    takes_key = True
    summary = (
        "atomic phases with recovery points, a timed lock, a completer and a downstream "
        "key derived from ours: no crash point charges twice"
    )

    def __init__(self, kit: Toolkit) -> None:
        """Work with `kit`."""
        self._kit = kit
        self.lock_timeout = timedelta(seconds=kit.settings.recovery_lock_timeout_s)

    async def create_payment(self, command: PaymentCommand) -> Answer:
        """Start the key (or replay, refuse or take it over), then run its remaining phases."""
        started = await self._start(command)
        if isinstance(started, Answer):
            return started
        return await self.resume(started)

    async def resume(self, row: KeyRow) -> Answer:
        """Run a locked key's phases from its recovery point to `finished`."""
        if row.recovery_point is RecoveryPoint.STARTED:
            await self._charge(row)
        return await self._finish(row)

    async def _start(self, command: PaymentCommand) -> Answer | KeyRow:
        kit, scope, request = self._kit, command.require_key(), command.request
        now = kit.now()
        async with kit.engine.begin() as conn:
            payment = Payment.new(command.principal, self.name, request, now)
            if await kit.store.claim_key(conn, scope, request, payment.id, now):
                await kit.store.insert_payment(conn, payment)
                record = KeyRecord(request.fingerprint(), RecordState.IN_FLIGHT)
                return KeyRow(scope, record, request, payment.id, RecoveryPoint.STARTED)
            found = await kit.store.read_key(conn, scope, now, self.lock_timeout, for_update=True)
            if found is None:  # it expired between the two statements: come back
                raise KeyInFlightError(1)
            replay = replay_of(decide(found.record, request.fingerprint()))
            if replay is not None:
                return replay
            await kit.store.lock_key(conn, scope, now)
            return found

    async def _charge(self, row: KeyRow) -> None:
        kit = self._kit
        async with kit.engine.connect() as conn:
            payment = await self._payment_of(conn, row)
        try:
            payment = await kit.charge(payment, row.scope.downstream())
        except ProviderUnavailableError:
            async with kit.engine.begin() as conn:
                await kit.store.lock_key(conn, row.scope, None)
            raise
        async with kit.engine.begin() as conn:
            await kit.store.settle_payment(conn, payment)
            await kit.store.advance_key(
                conn, row.scope, RecoveryPoint.STARTED, RecoveryPoint.CHARGE_CREATED
            )

    async def _finish(self, row: KeyRow) -> Answer:
        kit = self._kit
        async with kit.engine.begin() as conn:
            answer = Answer.created(await self._payment_of(conn, row))
            await kit.store.finish_key(conn, row.scope, answer.stored(), kit.now(), kit.key_ttl)
        kit.committed()
        return answer

    async def _payment_of(self, conn: AsyncConnection, row: KeyRow) -> Payment:
        payment = await self._kit.store.find_payment(conn, row.payment_id)
        if payment is None:
            raise MissingPaymentError(f"key {row.scope.key!r} names no payment {row.payment_id}")
        return payment


class Completer:
    """Finishes the keys whose requests were abandoned: brandur's completer."""

    def __init__(
        self, strategy: RecoveryPoints, kit: Toolkit, on_run: Callable[[str], None]
    ) -> None:
        """Resume `strategy`'s abandoned keys; `on_run` hears `finished` or `failed` for each."""
        self._strategy = strategy
        self._kit = kit
        self._on_run = on_run

    async def complete_once(self) -> list[ScopedKey]:
        """Take over the abandoned keys of one batch and finish them; return those finished."""
        kit = self._kit
        async with kit.engine.begin() as conn:
            rows = await kit.store.take_abandoned(
                conn, kit.now(), self._strategy.lock_timeout, COMPLETER_BATCH
            )
        finished = []
        for row in rows:
            try:
                await self._strategy.resume(row)
            except ProviderUnavailableError as exc:
                _log.warning("completer: key %r stays unfinished: %s", row.scope.key, exc)
                self._on_run("failed")
            else:
                finished.append(row.scope)
                self._on_run("finished")
        return finished

    async def run(self) -> None:
        """Complete abandoned keys every `IDEMPOTENCY_COMPLETER_INTERVAL_S`, until cancelled."""
        kit = self._kit
        while True:
            try:
                await self.complete_once()
            except (SQLAlchemyError, OSError) as exc:
                _log.warning("completer: PostgreSQL failed (%s); trying again", exc)
            await kit.clock.sleep(kit.settings.completer_interval_s)
