"""`python -m idempotency.charger`: the outbox strategy's idempotent consumer.

Pattern: a Kafka consumer in the group `<IDEMPOTENCY_KEY_PREFIX>-charger` reads
`payment.requested` events in batches. For each: read the payment; if it is no longer
pending, the event is a redelivery and is skipped; else charge the provider with the
payment id as the downstream key, then, in one transaction, record the event in the
processed-messages table and settle the payment (only if the event is new). Offsets
are committed after the batch. Several chargers may run at once; the topic's
partitions are shared among them.

Guarantee: each payment is charged once at the provider, whatever dies when. A charger
killed before the charge: the event is redelivered and charged then. Killed after the
provider charged and before the commit (`after_charge`): the redelivery charges again
with the same downstream key, which the provider answers with the first charge. Killed
after the commit and before the offset commit (`after_commit`): the redelivery finds
the payment settled. Two chargers handed one event in a rebalance: both calls carry
one downstream key, and the processed-messages row lets one settle it. The embedded
broker (Tansu) has no idempotent or transactional producer, and this design needs
neither: the relay is at least once, and the consumer dedupes.

A provider that gives no definitive answer is retried with backoff, in place (the
partition waits; order within it is kept). SIGTERM or SIGINT finishes the event in
hand, commits what is done and exits 0; an event given up on unfinished is simply
redelivered to whoever takes the partition.
"""

import asyncio
import logging
from contextlib import AsyncExitStack

from aiokafka import AIOKafkaConsumer

from idempotency.domain import PaymentStatus
from idempotency.events import PAYMENT_REQUESTED, ensure_topic
from idempotency.provider_client import ProviderUnavailableError
from idempotency.settings import IdempotencySettings
from idempotency.toolkit import Toolkit, fault_injector, open_toolkit
from labs.clients import kafka_consumer
from labs.clock import Clock, SystemClock
from labs.errors import LabError
from labs.outbox import ReceivedEvent
from labs.settings import ServerUrls
from labs.tasks import on_stop_signals
from labs.web.logs import configure_logging

_log = logging.getLogger(__name__)
POLL_MS = 200
MAX_BATCH = 100
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


class StoppedError(Exception):
    """The charger was told to stop while an event still waited for the provider."""


class Charger:
    """Charges the payment of each `payment.requested` event, once."""

    def __init__(self, kit: Toolkit, group: str) -> None:
        """Work with `kit`; record processed events under the consumer `group`."""
        self._kit = kit
        self._group = group
        self.charged = 0
        """Events this charger settled a payment for."""

    async def handle(self, event: ReceivedEvent) -> None:
        """Charge the event's payment unless it is settled; settle it if the event is new."""
        if event.headers.event_type != PAYMENT_REQUESTED:
            return
        kit = self._kit
        async with kit.engine.connect() as conn:
            payment = await kit.store.find_payment(conn, event.payload["payment_id"])
        if payment is None or payment.status is not PaymentStatus.PENDING:
            return
        payment = await kit.charge(payment, downstream_key=payment.id)
        async with kit.engine.begin() as conn:
            processed = kit.store.tables.processed
            if await processed.first_time(conn, self._group, event.headers.event_id):
                await kit.store.settle_payment(conn, payment)
                self.charged += 1
        kit.committed()

    async def handle_until_done(self, event: ReceivedEvent, stop: asyncio.Event) -> None:
        """Handle the event, retrying a provider with no definitive answer until `stop`."""
        backoff = FIRST_BACKOFF_S
        while True:
            try:
                await self.handle(event)
            except ProviderUnavailableError as exc:
                _log.warning("charger: %s; retrying in %.1fs", exc, backoff)
            else:
                return
            if stop.is_set():
                raise StoppedError(event.key)
            await self._kit.clock.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)


async def consume(charger: Charger, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
    """Handle batches and commit their offsets until `stop` is set."""
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_BATCH)
        try:
            for records in batches.values():
                for record in records:
                    await charger.handle_until_done(ReceivedEvent.from_record(record), stop)
        except StoppedError as exc:
            _log.info("charger: stopping with payment %s unfinished; it will be redelivered", exc)
            return
        if batches:
            await consumer.commit()


async def serve(settings: IdempotencySettings, urls: ServerUrls, clock: Clock) -> None:
    """Run one charger until SIGTERM or SIGINT."""
    if settings.provider_url is None:
        raise LabError("the charger needs IDEMPOTENCY_PROVIDER_URL: where the provider listens")
    bootstrap = urls.require("kafka_bootstrap_servers")
    stop = asyncio.Event()
    async with AsyncExitStack() as stack:
        await ensure_topic(bootstrap, settings.topic)
        kit = await open_toolkit(
            stack,
            settings,
            database_url=urls.require("database_url"),
            provider_url=settings.provider_url,
            faults=fault_injector(settings, clock),
            clock=clock,
        )
        consumer = kafka_consumer(bootstrap, settings.topic, group_id=settings.charger_group)
        await consumer.start()
        stack.push_async_callback(consumer.stop)
        with on_stop_signals(stop.set):
            await consume(Charger(kit, settings.charger_group), consumer, stop)


def main() -> None:
    """Run a charger with `IDEMPOTENCY_*` settings on the servers `ServerUrls` finds."""
    settings = IdempotencySettings()
    configure_logging("idempotency-charger", settings.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(settings, ServerUrls.discover(), SystemClock()))
    except LabError as exc:
        raise SystemExit(f"charger: {exc}") from None


if __name__ == "__main__":
    main()
