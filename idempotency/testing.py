"""Running the payments API inside the caller's event loop: for tests and in-process demos.

`running_api()` enters the app's lifespan in the caller's loop (no thread, no port)
and yields it with an httpx client that speaks ASGI to it, as one principal. A caller
can then hold the app's injected clock, reach its parts (`payments.kit`) and cancel a
request mid-way — a request's task is the caller's own. The provider and the servers
are real; only the hop from the client to the API skips TCP.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from idempotency.api import PaymentsApi
from idempotency.app import create_app
from idempotency.settings import IdempotencySettings
from labs.clock import Clock
from labs.settings import ServerUrls


@dataclass(frozen=True)
class RunningApi:
    """The payments API with its lifespan running, and a client calling it as one principal."""

    app: FastAPI
    http: httpx.AsyncClient

    @property
    def payments(self) -> PaymentsApi:
        """The app's wiring: its toolkit, strategies and metrics."""
        payments: PaymentsApi = self.app.state.payments
        return payments

    async def pay(
        self,
        strategy: str,
        body: dict[str, Any],
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST a payment under `strategy`, with `Idempotency-Key: key` unless it is None."""
        sent = dict(headers or {}) | ({} if key is None else {"Idempotency-Key": key})
        return await self.http.post(f"/v1/{strategy}/payments", json=body, headers=sent)

    async def payments_recorded(self) -> int:
        """Count the payments the API has recorded, whatever their status."""
        kit = self.payments.kit
        async with kit.engine.connect() as conn:
            count = await conn.scalar(select(func.count()).select_from(kit.store.tables.payments))
        return int(count or 0)


ApiFactory = Callable[..., AbstractAsyncContextManager[RunningApi]]


@asynccontextmanager
async def running_api(
    settings: IdempotencySettings,
    urls: ServerUrls,
    clock: Clock | None = None,
    api_key: str = "sk_test_alice",
) -> AsyncIterator[RunningApi]:
    """Run the API's lifespan in this event loop; yield it with a client sending `api_key`."""
    app = create_app(settings, urls, clock)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport, base_url="http://api", headers={"X-Api-Key": api_key}
        ) as http,
    ):
        yield RunningApi(app, http)
