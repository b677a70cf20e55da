"""Outbox events and their Kafka form: key = aggregate id, JSON value, identity in headers.

Following Debezium's outbox event router, the message key is the aggregate id (so one
aggregate's events land on one partition, in order) and the event id travels in a
header, where a consumer reads it to skip a redelivery before parsing the value.
`schema_version` lets a consumer upcast an old event (see `labs/events`).
"""

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

HEADER_EVENT_ID = "event_id"
HEADER_EVENT_TYPE = "event_type"
HEADER_SCHEMA_VERSION = "schema_version"


@dataclass(frozen=True)
class OutboxEvent:
    """An event to publish once the transaction that appends it commits."""

    topic: str
    key: str
    """The aggregate id: the message key, which fixes the partition and so the order."""
    payload: Mapping[str, Any]
    event_type: str
    schema_version: int = 1
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class EventHeaders:
    """The identity a message carries in its Kafka headers."""

    event_id: uuid.UUID
    event_type: str
    schema_version: int

    def encode(self) -> list[tuple[str, bytes]]:
        """Return the headers as Kafka wants them."""
        return [
            (HEADER_EVENT_ID, str(self.event_id).encode()),
            (HEADER_EVENT_TYPE, self.event_type.encode()),
            (HEADER_SCHEMA_VERSION, str(self.schema_version).encode()),
        ]

    @classmethod
    def decode(cls, headers: Sequence[tuple[str, bytes]]) -> "EventHeaders":
        """Read the headers of a received message; a missing one is a `KeyError`."""
        values = {name: value.decode() for name, value in headers}
        return cls(
            event_id=uuid.UUID(values[HEADER_EVENT_ID]),
            event_type=values[HEADER_EVENT_TYPE],
            schema_version=int(values[HEADER_SCHEMA_VERSION]),
        )


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """Return the message value: compact JSON."""
    return json.dumps(payload, separators=(",", ":")).encode()


@dataclass(frozen=True)
class ReceivedEvent:
    """An outbox event as a consumer receives it, with where it sat in the log."""

    headers: EventHeaders
    key: str
    payload: dict[str, Any]
    topic: str
    partition: int
    offset: int

    @classmethod
    def from_record(cls, record: Any) -> "ReceivedEvent":
        """Decode an aiokafka `ConsumerRecord` the relay produced."""
        return cls(
            headers=EventHeaders.decode(record.headers),
            key=record.key.decode(),
            payload=json.loads(record.value),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
