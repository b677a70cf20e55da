"""The outbox's tables: events appended in the writer's transaction, and consumers' dedupe.

`Outbox` owns two tables: `<name>` (one row per event: its shard, topic, key, payload
and identity; `published_at` stays NULL until a relay has sent it) and
`<name>_shards` (one row per shard, which a relay locks while it relays that shard).
A key always maps to the same shard (CRC-32 of the key), so holding a shard means
holding every key in it: two relays never publish one key's events concurrently, and
a key's events leave in id order, which is commit order as long as writers of one
aggregate serialise on its row (as they must for the change itself). The shard count
is fixed when the tables are created; changing it while events wait would reorder
keys that move shard.

`ProcessedMessages` is the consumer side: a (consumer group, event id) primary key
whose insert, made in the same transaction as the event's effect, says whether the
event is new. A redelivered event inserts nothing, so its effect is skipped.
"""

import re
import uuid
import zlib
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from labs.outbox.events import OutboxEvent

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_DDL_LOCK = 0x0B7B0C5  # one advisory lock serialises concurrent creators of these tables


def _checked(name: str) -> str:
    if not _IDENTIFIER.match(name):
        msg = f"table name {name!r} must be a lower-case SQL identifier"
        raise ValueError(msg)
    return name


def shard_of(key: str, shards: int) -> int:
    """Return the shard a key's events always use."""
    return zlib.crc32(key.encode()) % shards


@dataclass(frozen=True)
class Outbox:
    """An outbox's tables, in the schema of the connection that uses them."""

    events: Table
    shards: Table
    shard_count: int

    @classmethod
    def define(cls, name: str = "outbox", *, shard_count: int = 16) -> "Outbox":
        """Describe the outbox called `name` with `shard_count` shards (created by `create`)."""
        if shard_count < 1:
            raise ValueError("an outbox needs at least one shard")
        metadata = MetaData()
        events = Table(
            _checked(name),
            metadata,
            Column("id", BigInteger, primary_key=True, autoincrement=True),
            Column("shard", Integer, nullable=False),
            Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
            Column("topic", Text, nullable=False),
            Column("key", Text, nullable=False),
            Column("event_type", Text, nullable=False),
            Column("schema_version", Integer, nullable=False),
            Column("payload", JSONB, nullable=False),
            Column("created_at", DateTime(timezone=True), server_default=text("now()")),
            Column("published_at", DateTime(timezone=True)),
        )
        shards = Table(
            f"{name}_shards",
            metadata,
            Column("shard", Integer, primary_key=True),
            Column("relayed_at", DateTime(timezone=True), server_default=text("now()")),
        )
        return cls(events, shards, shard_count)

    async def create(self, connection: AsyncConnection) -> None:
        """Create the tables and their shard rows if missing (safe to run concurrently)."""
        name = self.events.name
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DDL_LOCK})
        await connection.run_sync(self.events.metadata.create_all)
        await connection.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {name}_unpublished "
                f"ON {name} (shard, id) WHERE published_at IS NULL"
            )
        )
        await connection.execute(
            text(
                f"INSERT INTO {name}_shards (shard) "
                "SELECT generate_series(0, :last) ON CONFLICT DO NOTHING"
            ),
            {"last": self.shard_count - 1},
        )

    async def append(self, connection: AsyncConnection, event: OutboxEvent) -> None:
        """Add `event` in the caller's transaction: it is published only if that commits."""
        await connection.execute(
            insert(self.events).values(
                shard=shard_of(event.key, self.shard_count),
                event_id=event.event_id,
                topic=event.topic,
                key=event.key,
                event_type=event.event_type,
                schema_version=event.schema_version,
                payload=dict(event.payload),
            )
        )


@dataclass(frozen=True)
class ProcessedMessages:
    """Which events each consumer group has applied: the consumer-side dedupe."""

    table: Table

    @classmethod
    def define(cls, name: str = "processed_messages") -> "ProcessedMessages":
        """Describe the table called `name` (created by `create`)."""
        table = Table(
            _checked(name),
            MetaData(),
            Column("consumer_group", Text, primary_key=True),
            Column("event_id", UUID(as_uuid=True), primary_key=True),
            Column("processed_at", DateTime(timezone=True), server_default=text("now()")),
        )
        return cls(table)

    async def create(self, connection: AsyncConnection) -> None:
        """Create the table if missing (safe to run concurrently)."""
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DDL_LOCK})
        await connection.run_sync(self.table.metadata.create_all)

    async def first_time(
        self, connection: AsyncConnection, group: str, event_id: uuid.UUID
    ) -> bool:
        """Record `event_id` for `group` in the caller's transaction; False if already there.

        Call it in the transaction that applies the event's effect: if that rolls back,
        the record goes with it and the redelivery applies the effect then. A concurrent
        transaction recording the same event waits for this one and then gets False.
        """
        inserted = await connection.execute(
            pg_insert(self.table)
            .values(consumer_group=group, event_id=event_id)
            .on_conflict_do_nothing()
            .returning(self.table.c.event_id)
        )
        return inserted.first() is not None
