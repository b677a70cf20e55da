"""The polling relay: outbox rows to Kafka, a few shards per transaction, at least once.

Each pass is one transaction: lock up to `shards_per_pass` shards that have waiting
events (`FOR UPDATE SKIP LOCKED`, least recently relayed first, so no relay waits
for another and no shard starves), read their oldest unpublished events in id order,
send them all, wait for the broker to acknowledge every one, then mark them published
and commit. Several relay processes can run at once: they lock different shards, and
a shard's lock covers every key in it, so each key's events leave in commit order.

Failures: if sending fails or the relay dies before the commit, the transaction rolls
back, the shard locks are released, and the whole batch goes again (consumers dedupe
on the event id). A message the broker acknowledged is never lost to a relay crash.
The producer keeps one batch in flight per partition (aiokafka's default), so a retry
inside the producer cannot reorder a partition either.

An idle relay polls every `idle_s` (50 ms by default): the price of not needing
LISTEN/NOTIFY (which would need a dedicated connection per relay); a pass that filled
its batch loops at once.
"""

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from labs.clock import Clock, SystemClock
from labs.outbox.events import EventHeaders, encode_payload
from labs.outbox.store import Outbox


class PollingRelay:
    """Publishes an outbox's events to Kafka; run one or several per outbox."""

    def __init__(
        self,
        engine: AsyncEngine,
        outbox: Outbox,
        producer: AIOKafkaProducer,
        *,
        batch_size: int = 500,
        shards_per_pass: int = 4,
        idle_s: float = 0.05,
        clock: Clock | None = None,
    ) -> None:
        """Relay `outbox` through a started `producer`."""
        if batch_size < 1 or shards_per_pass < 1:
            raise ValueError("batch_size and shards_per_pass must be at least 1")
        self._engine = engine
        self._outbox = outbox
        self._producer = producer
        self._batch_size = batch_size
        self._shards_per_pass = shards_per_pass
        self._idle_s = idle_s
        self._clock = clock or SystemClock()
        self.published = 0
        """Events this relay has published (and marked) so far."""

    async def relay_once(self) -> int:
        """Publish one batch from the shards this pass can lock; return how many."""
        async with self._engine.begin() as connection:
            shards = await self._lock_shards(connection)
            if not shards:
                return 0
            events = await self._waiting(connection, shards)
            await self._publish(events)
            await self._mark(connection, shards, [event.id for event in events])
        self.published += len(events)
        return len(events)

    async def run(self) -> None:
        """Relay until cancelled, resting `idle_s` whenever a pass did not fill its batch."""
        while True:
            if await self.relay_once() < self._batch_size:
                await self._clock.sleep(self._idle_s)

    async def _lock_shards(self, connection: AsyncConnection) -> list[int]:
        events, shards = self._outbox.events, self._outbox.shards
        waiting = (
            select(events.c.id)
            .where(events.c.shard == shards.c.shard, events.c.published_at.is_(None))
            .exists()
        )
        locked = await connection.execute(
            select(shards.c.shard)
            .where(waiting)
            .order_by(shards.c.relayed_at, shards.c.shard)
            .limit(self._shards_per_pass)
            .with_for_update(skip_locked=True)
        )
        return list(locked.scalars())

    async def _waiting(self, connection: AsyncConnection, shards: list[int]) -> Sequence[Row[Any]]:
        events = self._outbox.events
        rows = await connection.execute(
            select(events)
            .where(events.c.shard.in_(shards), events.c.published_at.is_(None))
            .order_by(events.c.id)
            .limit(self._batch_size)
        )
        return rows.all()

    async def _publish(self, events: Sequence[Row[Any]]) -> None:
        sent = [
            await self._producer.send(
                event.topic,
                value=encode_payload(event.payload),
                key=event.key.encode(),
                headers=EventHeaders(
                    event.event_id, event.event_type, event.schema_version
                ).encode(),
            )
            for event in events
        ]
        await asyncio.gather(*sent)

    async def _mark(self, connection: AsyncConnection, shards: list[int], ids: list[int]) -> None:
        events, shard_table = self._outbox.events, self._outbox.shards
        await connection.execute(
            update(events).where(events.c.id.in_(ids)).values(published_at=func.now())
        )
        await connection.execute(
            update(shard_table)
            .where(shard_table.c.shard.in_(shards))
            .values(relayed_at=func.clock_timestamp())
        )
