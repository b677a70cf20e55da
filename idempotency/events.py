"""The outbox strategy's event and topic: what the API publishes and the chargers consume.

One event type, `payment.requested`, keyed by the payment id (so a payment's events
stay on one partition) and carrying only that id: the charger reads the payment from
PostgreSQL, where its amount and status are the truth, rather than trusting a copy.
"""

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from idempotency.domain import Payment
from labs.outbox import OutboxEvent

PAYMENT_REQUESTED = "payment.requested"
PARTITIONS = 4
"""Partitions of the topic: how many chargers can work at once."""


def payment_requested(topic: str, payment: Payment) -> OutboxEvent:
    """Return the event that asks a charger to charge `payment`."""
    return OutboxEvent(
        topic=topic,
        key=payment.id,
        payload={"payment_id": payment.id},
        event_type=PAYMENT_REQUESTED,
    )


async def ensure_topic(bootstrap_servers: str, topic: str) -> None:
    """Create the topic with `PARTITIONS` partitions unless it exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
