"""What the strategies and the charger work with, and how a process opens it.

`Toolkit` bundles the PostgreSQL engine and store, the provider client, the fault
injector and the clock. Its `charge` is the one way anything calls the provider for a
payment, so every strategy and the charger pass the same named crash points:
`before_charge`, `after_charge` (the provider answered, nothing of ours committed)
and, through `committed`, `after_commit` (everything recorded, the answer not sent).
`open_toolkit` makes the clients and the tables, and registers their closing.
"""

from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from idempotency.domain import CrashPoint, Payment
from idempotency.provider_client import ProviderClient
from idempotency.settings import IdempotencySettings
from idempotency.sql import create_tables, engine_in_schema
from idempotency.store import PaymentStore, Tables
from labs.clients import http_client
from labs.clock import Clock
from labs.faults import FaultInjector


@dataclass(frozen=True)
class Toolkit:
    """What strategies work with, built once by the app (or the charger)."""

    engine: AsyncEngine
    store: PaymentStore
    provider: ProviderClient
    faults: FaultInjector
    clock: Clock
    settings: IdempotencySettings

    def now(self) -> datetime:
        """Return the injected clock's wall time."""
        return datetime.fromtimestamp(self.clock.time(), UTC)

    @property
    def key_ttl(self) -> timedelta:
        """How long a finished key is replayed."""
        return timedelta(seconds=self.settings.key_ttl_s)

    async def charge(self, payment: Payment, downstream_key: str | None) -> Payment:
        """Charge the payment at the provider; return it settled (succeeded or failed)."""
        self.faults.reach(CrashPoint.BEFORE_CHARGE)
        charged = payment.charged(await self.provider.charge(payment, downstream_key))
        self.faults.reach(CrashPoint.AFTER_CHARGE)
        return charged

    def committed(self) -> None:
        """Mark the point where all is recorded and the answer is not yet sent."""
        self.faults.reach(CrashPoint.AFTER_COMMIT)


def fault_injector(settings: IdempotencySettings, clock: Clock) -> FaultInjector:
    """Return an injector with the crash points and the plan `settings` start with."""
    faults = FaultInjector(clock, settings.seed, crash_points=[point.value for point in CrashPoint])
    faults.change(settings.faults)
    return faults


async def open_toolkit(
    stack: AsyncExitStack,
    settings: IdempotencySettings,
    *,
    database_url: str,
    provider_url: str,
    faults: FaultInjector,
    clock: Clock,
) -> Toolkit:
    """Open the engine and the provider's client (closed with `stack`) and create the tables."""
    engine = engine_in_schema(database_url, settings.db_schema)
    stack.push_async_callback(engine.dispose)
    http = http_client(timeout=settings.provider_timeout_s)
    stack.push_async_callback(http.aclose)
    tables = Tables()
    await create_tables(
        engine, settings.db_schema, tables.metadata, tables.outbox.create, tables.processed.create
    )
    provider = ProviderClient(http, provider_url)
    return Toolkit(engine, PaymentStore(tables), provider, faults, clock, settings)
