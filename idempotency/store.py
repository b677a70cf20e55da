"""The API's PostgreSQL adapter: payments, refunds, key records, the outbox.

Pattern: SQLAlchemy Core on asyncpg; every function takes the caller's connection, so
a strategy decides what shares a transaction (a payment with its key record, or with
its outbox event). Key records for every SQL strategy live in one table,
`idempotency_keys`, keyed by (principal, route, key) and shaped like brandur's
rocket-rides-atomic: the request it was made for, its fingerprint, the payment it
created, a `recovery_point` (`started`, `charge_created`, `finished`), a `locked_at`
and, once finished, the response to replay and when it expires.

Guarantees: a refund locks its payment's row, so concurrent refunds are checked one
after another against what is left; a key's scope lock (`try_lock_scope`) is a
transaction-level advisory lock, released by PostgreSQL when the transaction ends in
any way — including the connection of a SIGKILLed process — so it can never be left
stuck in progress. An expired key reads as absent and its row is reused.
"""

import dataclasses
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    Table,
    Text,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from idempotency.domain import (
    KeyRecord,
    Payment,
    PaymentRequest,
    PaymentStatus,
    RecordState,
    ScopedKey,
    StoredResponse,
    StrategyName,
)
from labs.outbox import Outbox, ProcessedMessages


class RecoveryPoint(StrEnum):
    """How far a keyed request got: each is committed with the work that reaches it."""

    STARTED = "started"
    """The key and a pending payment are recorded; the provider has not been asked."""
    CHARGE_CREATED = "charge_created"
    """The provider's answer is recorded on the payment."""
    FINISHED = "finished"
    """The response is stored for replay."""


NATURAL_KEY = ("principal", "customer", "amount", "currency")
"""What the natural-key strategy takes to identify a payment (with a time window)."""


def _at(name: str, *, nullable: bool = False) -> Column[datetime]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


class Tables:
    """The API's tables (in the schema of the connections that use them)."""

    def __init__(self) -> None:
        """Describe the tables."""
        self.metadata = MetaData()
        self.payments = Table(
            "payments",
            self.metadata,
            Column("id", Text, primary_key=True),
            Column("principal", Text, nullable=False),
            Column("strategy", Text, nullable=False),
            Column("amount", BigInteger, nullable=False),
            Column("currency", Text, nullable=False),
            Column("customer", Text, nullable=False),
            Column("description", Text, nullable=False),
            Column("status", Text, nullable=False),
            Column("charge_id", BigInteger),
            Column("refunded", BigInteger, nullable=False, server_default="0"),
            _at("created_at"),
            Index("payments_by_natural_key", *NATURAL_KEY, "created_at"),
        )
        self.refunds = Table(
            "refunds",
            self.metadata,
            Column("id", Text, primary_key=True),
            Column("payment_id", Text, ForeignKey(self.payments.c.id), nullable=False),
            Column("amount", BigInteger, nullable=False),
            Column("provider_refund_id", BigInteger, nullable=False),
            _at("created_at"),
        )
        self.keys = Table(
            "idempotency_keys",
            self.metadata,
            Column("principal", Text, primary_key=True),
            Column("route", Text, primary_key=True),
            Column("key", Text, primary_key=True),
            Column("fingerprint", Text, nullable=False),
            Column("request", JSONB, nullable=False),
            Column("payment_id", Text, nullable=False),
            Column("recovery_point", Text, nullable=False),
            _at("locked_at", nullable=True),
            # json, not jsonb: a replay must send the body's keys in their original order.
            Column("response", JSON),
            _at("created_at"),
            _at("expires_at", nullable=True),
            Index(
                "idempotency_keys_unfinished",
                "locked_at",
                postgresql_where=Column("recovery_point") != RecoveryPoint.FINISHED.value,
            ),
        )
        self.outbox = Outbox.define("payment_outbox")
        self.processed = ProcessedMessages.define("processed_messages")


@dataclass(frozen=True)
class KeyRow:
    """A key record as stored, with what a strategy needs to resume its request."""

    scope: ScopedKey
    record: KeyRecord
    request: PaymentRequest
    payment_id: str
    recovery_point: RecoveryPoint


def _payment(row: RowMapping) -> Payment:
    return Payment(
        id=row["id"],
        principal=row["principal"],
        strategy=StrategyName(row["strategy"]),
        request=PaymentRequest(
            amount=row["amount"],
            currency=row["currency"],
            customer=row["customer"],
            description=row["description"],
        ),
        status=PaymentStatus(row["status"]),
        created_at=row["created_at"],
        charge_id=row["charge_id"],
        refunded=row["refunded"],
    )


def _stored(response: dict[str, Any] | None) -> StoredResponse | None:
    return None if response is None else StoredResponse(**response)


class PaymentStore:
    """Payments, refunds and key records on the caller's connection."""

    def __init__(self, tables: Tables) -> None:
        """Work on `tables`."""
        self.tables = tables

    async def insert_payment(self, conn: AsyncConnection, payment: Payment) -> None:
        """Record a new payment."""
        await conn.execute(
            insert(self.tables.payments).values(
                id=payment.id,
                principal=payment.principal,
                strategy=payment.strategy.value,
                status=payment.status.value,
                charge_id=payment.charge_id,
                created_at=payment.created_at,
                **payment.request.model_dump(),
            )
        )

    async def settle_payment(self, conn: AsyncConnection, payment: Payment) -> None:
        """Record the provider's answer on a payment still pending (a repeat changes nothing)."""
        payments = self.tables.payments
        await conn.execute(
            update(payments)
            .where(payments.c.id == payment.id, payments.c.status == PaymentStatus.PENDING.value)
            .values(status=payment.status.value, charge_id=payment.charge_id)
        )

    async def find_payment(
        self, conn: AsyncConnection, payment_id: str, *, principal: str | None = None
    ) -> Payment | None:
        """Return a payment (only the principal's own, when given), or None."""
        return await self._select_payment(conn, payment_id, principal, lock=False)

    async def lock_payment(
        self, conn: AsyncConnection, payment_id: str, principal: str
    ) -> Payment | None:
        """Return the principal's payment, its row locked until the transaction ends."""
        return await self._select_payment(conn, payment_id, principal, lock=True)

    async def _select_payment(
        self, conn: AsyncConnection, payment_id: str, principal: str | None, *, lock: bool
    ) -> Payment | None:
        payments = self.tables.payments
        query = select(payments).where(payments.c.id == payment_id)
        if principal is not None:
            query = query.where(payments.c.principal == principal)
        if lock:
            query = query.with_for_update()
        row = (await conn.execute(query)).mappings().first()
        return None if row is None else _payment(row)

    async def latest_repeat(
        self, conn: AsyncConnection, principal: str, request: PaymentRequest, since: datetime
    ) -> Payment | None:
        """Return the newest natural-key payment like `request` made after `since`."""
        payments = self.tables.payments
        row = (
            (
                await conn.execute(
                    select(payments)
                    .where(
                        payments.c.strategy == StrategyName.NATURAL_KEY.value,
                        payments.c.principal == principal,
                        payments.c.customer == request.customer,
                        payments.c.amount == request.amount,
                        payments.c.currency == request.currency,
                        payments.c.created_at > since,
                    )
                    .order_by(payments.c.created_at.desc())
                    .limit(1)
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else _payment(row)

    async def add_refund(
        self, conn: AsyncConnection, payment: Payment, amount: int, provider_id: int, now: datetime
    ) -> RowMapping:
        """Record a refund the provider executed against a payment locked by the caller."""
        payments, refunds = self.tables.payments, self.tables.refunds
        await conn.execute(
            update(payments)
            .where(payments.c.id == payment.id)
            .values(refunded=payments.c.refunded + amount)
        )
        inserted = await conn.execute(
            insert(refunds)
            .values(
                id=f"re_{uuid.uuid4().hex}",
                payment_id=payment.id,
                amount=amount,
                provider_refund_id=provider_id,
                created_at=now,
            )
            .returning(refunds)
        )
        refund: RowMapping = inserted.mappings().one()
        return refund

    async def read_key(
        self,
        conn: AsyncConnection,
        scope: ScopedKey,
        now: datetime,
        lock_timeout: timedelta = timedelta(0),
        *,
        for_update: bool = False,
    ) -> KeyRow | None:
        """Return the key's live record (an expired one reads as None)."""
        keys = self.tables.keys
        query = select(keys).where(*self._scope(scope), _live(keys, now))
        if for_update:
            query = query.with_for_update()
        row = (await conn.execute(query)).mappings().first()
        return None if row is None else _key_row(row, now, lock_timeout)

    async def claim_key(
        self,
        conn: AsyncConnection,
        scope: ScopedKey,
        request: PaymentRequest,
        payment_id: str,
        now: datetime,
        *,
        finished: tuple[StoredResponse, timedelta] | None = None,
    ) -> bool:
        """Create the key's record unless a live one exists; True if made.

        The record starts locked at `now`, or, with `finished` (the response and how
        long to keep it), already finished.
        """
        keys = self.tables.keys
        values = {
            "principal": scope.principal,
            "route": scope.route,
            "key": scope.key,
            "fingerprint": request.fingerprint(),
            "request": request.model_dump(mode="json"),
            "payment_id": payment_id,
            "created_at": now,
        } | (_started(now) if finished is None else _finished(*finished, now))
        statement = insert(keys).values(values)
        made = await conn.execute(
            statement.on_conflict_do_update(
                index_elements=list(keys.primary_key.columns),
                set_={name: statement.excluded[name] for name in values},
                where=~_live(keys, now),
            ).returning(keys.c.key)
        )
        return made.first() is not None

    async def finish_key(
        self,
        conn: AsyncConnection,
        scope: ScopedKey,
        response: StoredResponse,
        now: datetime,
        ttl: timedelta,
    ) -> None:
        """Store the key's response for replay, unlock it and start its expiry."""
        keys = self.tables.keys
        await conn.execute(
            update(keys).where(*self._scope(scope)).values(_finished(response, ttl, now))
        )

    async def advance_key(
        self, conn: AsyncConnection, scope: ScopedKey, done: RecoveryPoint, reached: RecoveryPoint
    ) -> None:
        """Move the key from recovery point `done` to `reached` (never back)."""
        keys = self.tables.keys
        await conn.execute(
            update(keys)
            .where(*self._scope(scope), keys.c.recovery_point == done.value)
            .values(recovery_point=reached.value)
        )

    async def lock_key(self, conn: AsyncConnection, scope: ScopedKey, now: datetime | None) -> None:
        """Lock the key at `now` (take over an abandoned one), or unlock it with None."""
        keys = self.tables.keys
        await conn.execute(update(keys).where(*self._scope(scope)).values(locked_at=now))

    async def take_abandoned(
        self, conn: AsyncConnection, now: datetime, lock_timeout: timedelta, limit: int
    ) -> list[KeyRow]:
        """Lock at `now` and return up to `limit` unfinished keys nobody holds.

        A key nobody holds is unlocked (its request failed and gave it back) or locked
        longer than `lock_timeout` ago (its request died, or stalls). Keys another
        transaction is taking are skipped, so several completers share the work.
        """
        keys = self.tables.keys
        abandoned = (
            select(keys.c.principal, keys.c.route, keys.c.key)
            .where(
                keys.c.recovery_point != RecoveryPoint.FINISHED.value,
                or_(keys.c.locked_at.is_(None), keys.c.locked_at < now - lock_timeout),
            )
            .order_by(keys.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte()
        )
        rows = await conn.execute(
            update(keys)
            .where(
                keys.c.principal == abandoned.c.principal,
                keys.c.route == abandoned.c.route,
                keys.c.key == abandoned.c.key,
            )
            .values(locked_at=now)
            .returning(keys)
        )
        return [_key_row(row, now, lock_timeout) for row in rows.mappings()]

    def _scope(self, scope: ScopedKey) -> tuple[Any, ...]:
        keys = self.tables.keys
        return (
            keys.c.principal == scope.principal,
            keys.c.route == scope.route,
            keys.c.key == scope.key,
        )


async def try_lock_scope(conn: AsyncConnection, scope: ScopedKey) -> bool:
    """Take the scope's advisory lock for the transaction, unless another holds it."""
    locked = await conn.execute(
        select(func.pg_try_advisory_xact_lock(func.hashtextextended(str(scope), 0)))
    )
    return bool(locked.scalar_one())


async def lock_scope(conn: AsyncConnection, scope: str) -> None:
    """Take the advisory lock on `scope` for the transaction, waiting for its holder."""
    await conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(scope, 0))))


def _key_row(row: RowMapping, now: datetime, lock_timeout: timedelta) -> KeyRow:
    point = RecoveryPoint(row["recovery_point"])
    locked_at: datetime | None = row["locked_at"]
    held_until = now if locked_at is None else locked_at + lock_timeout
    record = KeyRecord(
        fingerprint=row["fingerprint"],
        state=_state(point, locked_at, now, lock_timeout),
        response=_stored(row["response"]),
        retry_after_s=max(1, math.ceil((held_until - now).total_seconds())),
    )
    scope = ScopedKey(row["principal"], row["route"], row["key"])
    return KeyRow(scope, record, PaymentRequest(**row["request"]), row["payment_id"], point)


def _started(now: datetime) -> dict[str, Any]:
    return {
        "recovery_point": RecoveryPoint.STARTED.value,
        "locked_at": now,
        "response": None,
        "expires_at": None,
    }


def _finished(response: StoredResponse, ttl: timedelta, now: datetime) -> dict[str, Any]:
    return {
        "recovery_point": RecoveryPoint.FINISHED.value,
        "locked_at": None,
        "response": dataclasses.asdict(response),
        "expires_at": now + ttl,
    }


def _live(keys: Table, now: datetime) -> Any:
    return or_(keys.c.expires_at.is_(None), keys.c.expires_at > now)


def _state(
    point: RecoveryPoint, locked_at: datetime | None, now: datetime, lock_timeout: timedelta
) -> RecordState:
    if point is RecoveryPoint.FINISHED:
        return RecordState.FINISHED
    if locked_at is not None and locked_at > now - lock_timeout:
        return RecordState.IN_FLIGHT
    return RecordState.ABANDONED
