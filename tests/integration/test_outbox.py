"""The outbox on real PostgreSQL and Kafka: commit-bound events, per-key order, at least once."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.clients import kafka_consumer, kafka_producer
from labs.outbox import Outbox, OutboxEvent, PollingRelay, ProcessedMessages, ReceivedEvent
from labs.settings import ServerUrls

PARTITIONS = 3


@pytest.fixture
async def outbox(db: AsyncEngine) -> Outbox:
    """An outbox with 8 shards, created in the test's schema."""
    defined = Outbox.define("orders_outbox", shard_count=8)
    async with db.begin() as connection:
        await defined.create(connection)
    return defined


@pytest.fixture
async def producer(lab_urls: ServerUrls) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer."""
    started = kafka_producer(lab_urls.require("kafka_bootstrap_servers"))
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
async def topic(lab_urls: ServerUrls, topic_name: Callable[[str], str]) -> str:
    """A fresh topic with three partitions."""
    name = topic_name("outbox")
    admin = AIOKafkaAdminClient(bootstrap_servers=lab_urls.require("kafka_bootstrap_servers"))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        await admin.close()
    return name


async def consume(urls: ServerUrls, topic: str, count: int) -> list[ReceivedEvent]:
    """Read `count` messages from `topic` through a fresh consumer group."""
    consumer = kafka_consumer(
        urls.require("kafka_bootstrap_servers"), topic, group_id=f"g-{uuid.uuid4().hex}"
    )
    await consumer.start()
    received: list[ReceivedEvent] = []
    try:
        while len(received) < count:
            batches = await consumer.getmany(timeout_ms=10_000)
            if not batches:
                break
            received += [
                ReceivedEvent.from_record(record)
                for records in batches.values()
                for record in records
            ]
    finally:
        await consumer.stop()
    return received


async def append_all(db: AsyncEngine, outbox: Outbox, events: list[OutboxEvent]) -> None:
    """Append each event in its own committed transaction, in list order."""
    for event in events:
        async with db.begin() as connection:
            await outbox.append(connection, event)


def order_events(topic: str, keys: int, per_key: int) -> list[OutboxEvent]:
    """`per_key` numbered events for each of `keys` orders, interleaved."""
    return [
        OutboxEvent(topic, f"order-{key}", {"order": key, "seq": seq}, "order.updated")
        for seq in range(per_key)
        for key in range(keys)
    ]


async def test_only_committed_events_are_published_with_their_identity(
    db: AsyncEngine, outbox: Outbox, producer: AIOKafkaProducer, topic: str, lab_urls: ServerUrls
) -> None:
    """A rolled-back append publishes nothing; a committed one arrives keyed, with headers."""
    kept = OutboxEvent(topic, "order-1", {"total": 1200}, "order.placed", schema_version=2)

    async def append_then_fail() -> None:
        async with db.begin() as connection:
            await outbox.append(
                connection, OutboxEvent(topic, "order-0", {"total": 1}, "order.placed")
            )
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError, match="rolled back"):
        await append_then_fail()
    await append_all(db, outbox, [kept])
    relay = PollingRelay(db, outbox, producer)
    assert await relay.relay_once() == 1
    assert await relay.relay_once() == 0
    [received] = await consume(lab_urls, topic, 1)
    assert (received.key, received.payload) == ("order-1", {"total": 1200})
    assert received.headers.event_id == kept.event_id
    assert (received.headers.event_type, received.headers.schema_version) == ("order.placed", 2)


async def test_concurrent_relays_publish_every_event_once_in_key_order(
    db: AsyncEngine, outbox: Outbox, producer: AIOKafkaProducer, topic: str, lab_urls: ServerUrls
) -> None:
    """Three relays racing over 1,200 events: each published once, each key in commit order."""
    events = order_events(topic, keys=40, per_key=30)
    await append_all(db, outbox, events)
    relays = [PollingRelay(db, outbox, producer, batch_size=50, shards_per_pass=2) for _ in "abc"]

    async def drain(relay: PollingRelay) -> None:
        while await relay.relay_once():
            pass

    await asyncio.gather(*(drain(relay) for relay in relays))
    assert sum(relay.published for relay in relays) == len(events)
    assert all(relay.published for relay in relays), "every relay took a share"
    received = await consume(lab_urls, topic, len(events))
    assert sorted(event.headers.event_id for event in received) == sorted(
        event.event_id for event in events
    )
    for key in {event.key for event in events}:
        sequence = [event.payload["seq"] for event in received if event.key == key]
        assert sequence == list(range(30)), key


async def test_a_relay_that_dies_before_marking_publishes_again_and_consumers_dedupe(
    *,
    db: AsyncEngine,
    outbox: Outbox,
    producer: AIOKafkaProducer,
    topic: str,
    lab_urls: ServerUrls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sent but not marked: the batch goes again; `first_time` applies each event once."""
    events = order_events(topic, keys=5, per_key=4)
    await append_all(db, outbox, events)
    relay = PollingRelay(db, outbox, producer, shards_per_pass=outbox.shard_count)

    async def die(*_: object) -> None:
        raise ConnectionError("relay lost its database connection after sending")

    with monkeypatch.context() as patch:
        patch.setattr(relay, "_mark", die)
        with pytest.raises(ConnectionError):
            await relay.relay_once()
    assert await relay.relay_once() == len(events)
    received = await consume(lab_urls, topic, 2 * len(events))
    assert len(received) == 2 * len(events)

    processed = ProcessedMessages.define()
    async with db.begin() as connection:
        await processed.create(connection)
    applied = []
    for event in received:
        async with db.begin() as connection:
            if await processed.first_time(connection, "billing", event.headers.event_id):
                applied.append(event.headers.event_id)
    assert sorted(applied) == sorted(event.event_id for event in events)
    async with db.connect() as connection:
        unpublished = await connection.scalar(
            select(func.count())
            .select_from(outbox.events)
            .where(outbox.events.c.published_at.is_(None))
        )
    assert unpublished == 0


async def test_first_time_is_per_group_and_undone_by_a_rollback(db: AsyncEngine) -> None:
    """A rolled-back record does not count; another group sees the same event as new."""
    processed = ProcessedMessages.define("seen")
    event_id = uuid.uuid4()
    async with db.begin() as connection:
        await processed.create(connection)

    async def record_then_fail() -> None:
        async with db.begin() as connection:
            assert await processed.first_time(connection, "billing", event_id)
            raise RuntimeError("the effect failed")

    with pytest.raises(RuntimeError, match="effect failed"):
        await record_then_fail()
    async with db.begin() as connection:
        assert await processed.first_time(connection, "billing", event_id)
        assert not await processed.first_time(connection, "billing", event_id)
        assert await processed.first_time(connection, "projection", event_id)


def test_table_names_must_be_identifiers() -> None:
    """A name that is not a plain identifier is refused before any SQL is built."""
    with pytest.raises(ValueError, match="identifier"):
        Outbox.define("outbox; drop table x")
    with pytest.raises(ValueError, match="shard"):
        Outbox.define(shard_count=0)
