"""The transactional outbox: an event committed with the change it describes, then relayed.

Pattern: a service writes its change and an outbox row in one PostgreSQL transaction
(`Outbox.append`), so the event exists exactly when the change does; a relay
(`PollingRelay`) publishes outbox rows to Kafka and marks them sent; consumers skip
events they have seen (`ProcessedMessages.first_time`, in the transaction that applies
the event's effect).

Guarantee: every committed event reaches Kafka at least once, in commit order per key
(the aggregate id, also the message key, so a key's events share a partition), and
a consumer that records `first_time` with its effect applies each event once. What it
does not give: exactly-once publishing (a relay that dies between publishing and
marking publishes the batch again), which is why consumers dedupe on the event id
carried in the headers. The embedded broker (Tansu) has no idempotent or
transactional producer, and the design does not lean on one.

Failures it handles: a crash between the change and the publish (the row waits in
the outbox), a relay killed mid-batch (its transaction rolls back; the rows go
again), several relays at once (each holds the shards it relays, so none reorders a
key), and a redelivered message (the processed-messages table refuses it).
"""

from labs.outbox.events import EventHeaders, OutboxEvent, ReceivedEvent
from labs.outbox.relay import PollingRelay
from labs.outbox.store import Outbox, ProcessedMessages

__all__ = [
    "EventHeaders",
    "Outbox",
    "OutboxEvent",
    "PollingRelay",
    "ProcessedMessages",
    "ReceivedEvent",
]
