"""The payment provider's ledger of truth in PostgreSQL: every charge and refund it executed.

Pattern: the provider is idempotent on its own key, as Stripe is. A charge with an
`Idempotency-Key` is one `INSERT ... ON CONFLICT (idempotency_key) DO NOTHING`: the
first request creates the row; any later one with the same key gets the original
charge back (a replay), or is refused when its payload differs. Two concurrent
requests with one key cannot both insert: the second waits on the unique index until
the first commits, then finds its row. A refund locks its charge's row, checks that it
fits in what is left, and records itself in the same transaction.

Guarantee: a charge is in the ledger exactly when the provider executed it, whatever
happened to the answer afterwards; the downstream key a caller sent is kept with it,
so a checker can tell a retry the provider deduplicated from a second charge. Ids
increase with each charge (`GET /charges?after=` pages in id order).

Failure it handles: the caller that charges, crashes before recording the charge and
charges again after restarting. With the same downstream key the second call is a
replay, not a second charge — the property the `recovery-points` and `outbox`
strategies are built on; without one, the ledger shows both charges.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    MetaData,
    Table,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from idempotency.domain import check_refund

DECLINED_PREFIX = "declined"
"""Customers whose id starts with this are declined, like a processor's test cards."""


@dataclass(frozen=True)
class ChargeRequest:
    """What a caller asks the provider to charge."""

    amount: int
    currency: str
    customer: str
    reference: str
    description: str


class ChargeKeyReusedError(Exception):
    """The downstream key was first used for another charge."""


class CardDeclinedError(Exception):
    """The provider refuses the charge for good."""


class UnknownChargeError(Exception):
    """No charge has that id."""


def _created_at() -> Column[datetime]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


class LedgerTables:
    """The provider's tables."""

    def __init__(self) -> None:
        """Describe the tables (in the schema of the connections that use them)."""
        self.metadata = MetaData()
        self.charges = Table(
            "charges",
            self.metadata,
            Column("id", BigInteger, Identity(), primary_key=True),
            Column("idempotency_key", Text, unique=True),
            Column("amount", BigInteger, nullable=False),
            Column("currency", Text, nullable=False),
            Column("customer", Text, nullable=False),
            Column("reference", Text, nullable=False),
            Column("description", Text, nullable=False),
            Column("refunded", BigInteger, nullable=False, server_default="0"),
            _created_at(),
        )
        self.refunds = Table(
            "refunds",
            self.metadata,
            Column("id", BigInteger, Identity(), primary_key=True),
            Column("charge_id", BigInteger, ForeignKey(self.charges.c.id), nullable=False),
            Column("amount", BigInteger, nullable=False),
            _created_at(),
        )


_PAYLOAD = ("amount", "currency", "customer", "reference", "description")


class Ledger:
    """Charges and refunds, executed and recorded in one transaction each."""

    def __init__(self, engine: AsyncEngine, tables: LedgerTables) -> None:
        """Work on `tables` through `engine`."""
        self._engine = engine
        self._tables = tables

    async def charge(self, request: ChargeRequest, key: str | None) -> tuple[RowMapping, bool]:
        """Execute a charge, or find the one `key` made; return it and whether it was found."""
        if request.customer.startswith(DECLINED_PREFIX):
            raise CardDeclinedError(f"the card of {request.customer!r} is declined")
        charges = self._tables.charges
        values = {name: getattr(request, name) for name in _PAYLOAD} | {"idempotency_key": key}
        async with self._engine.begin() as conn:
            statement = insert(charges).values(values)
            if key is not None:
                statement = statement.on_conflict_do_nothing(index_elements=["idempotency_key"])
            created = (await conn.execute(statement.returning(charges))).mappings().first()
            if created is not None:
                return created, False
            found = (
                (await conn.execute(select(charges).where(charges.c.idempotency_key == key)))
                .mappings()
                .one()
            )
        if any(found[name] != values[name] for name in _PAYLOAD):
            raise ChargeKeyReusedError(f"the key {key!r} was used for another charge")
        return found, True

    async def refund(self, charge_id: int, amount: int) -> RowMapping:
        """Refund part of a charge, never more than is left of it."""
        charges, refunds = self._tables.charges, self._tables.refunds
        async with self._engine.begin() as conn:
            charge = (
                (
                    await conn.execute(
                        select(charges.c.amount, charges.c.refunded)
                        .where(charges.c.id == charge_id)
                        .with_for_update()
                    )
                )
                .mappings()
                .first()
            )
            if charge is None:
                raise UnknownChargeError(f"no charge has the id {charge_id}")
            check_refund(charge["amount"], charge["refunded"], amount)
            await conn.execute(
                update(charges)
                .where(charges.c.id == charge_id)
                .values(refunded=charges.c.refunded + amount)
            )
            inserted = await conn.execute(
                insert(refunds).values(charge_id=charge_id, amount=amount).returning(refunds)
            )
            refund: RowMapping = inserted.mappings().one()
            return refund

    async def page(self, after: int, limit: int) -> list[RowMapping]:
        """Return up to `limit` charges with ids above `after`, in id order."""
        charges = self._tables.charges
        query = select(charges).where(charges.c.id > after).order_by(charges.c.id).limit(limit)
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).mappings())

    async def reset(self) -> None:
        """Forget every charge and refund (ids keep increasing)."""
        async with self._engine.begin() as conn:
            await conn.execute(delete(self._tables.refunds))
            await conn.execute(delete(self._tables.charges))
