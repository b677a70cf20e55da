"""The side-effect ledger in PostgreSQL: one row per side effect the side-effecting hop performs.

Pattern: the work *is* the insert, committed before the answer leaves (so a lost
answer means the work was done). With an `Idempotency-Key`, the insert is `ON
CONFLICT (idempotency_key) DO NOTHING`: the unique index decides atomically, so a
retry — even one racing the attempt it repeats — finds the first row and answers
with it instead of adding another. Without a key, every attempt that arrives is a
new side effect.

Duplicates are read from the table, not from any hop's memory: `rows - distinct
request ids`.
"""

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    MetaData,
    Table,
    Text,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

metadata = MetaData()
side_effects = Table(
    "failsim_side_effects",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("request_id", Text, nullable=False),
    Column("idempotency_key", Text, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


@dataclass(frozen=True)
class Effect:
    """A side effect: its row, and whether this call replayed an earlier one."""

    id: int
    replayed: bool


class Ledger:
    """Performs and counts side effects."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Write through `engine` (its search path chooses the schema)."""
        self._engine = engine

    async def create(self) -> None:
        """Create the table if it is not there."""
        async with self._engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def perform(self, request_id: str, key: str | None) -> Effect:
        """Record the side effect, once per key when a key is given."""
        statement = insert(side_effects).values(request_id=request_id, idempotency_key=key)
        if key is not None:
            statement = statement.on_conflict_do_nothing(index_elements=["idempotency_key"])
        async with self._engine.begin() as conn:
            new_id = await conn.scalar(statement.returning(side_effects.c.id))
            if new_id is not None:
                return Effect(int(new_id), replayed=False)
            earlier = select(side_effects.c.id).where(side_effects.c.idempotency_key == key)
            return Effect(int(await conn.scalar(earlier) or 0), replayed=True)

    async def counts(self) -> tuple[int, int]:
        """Return (side effects, distinct request ids)."""
        query = select(func.count(), func.count(side_effects.c.request_id.distinct()))
        async with self._engine.connect() as conn:
            rows, distinct = (await conn.execute(query)).one()
        return int(rows), int(distinct)

    async def reset(self) -> None:
        """Forget every side effect."""
        async with self._engine.begin() as conn:
            await conn.execute(delete(side_effects))
