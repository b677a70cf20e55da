"""Reading and steering a payment provider from outside: its ledger, its faults, its reset.

For whoever judges the strategies — tests, the experiment's checker, a person at a
shell: `charges()` reads the whole ledger of truth page by page (`GET /charges`), in id
order; `set_faults()` and `reset()` use the admin token.
"""

from dataclasses import dataclass
from typing import Any

import httpx

from idempotency.provider.app import HELD_METRIC

_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ProviderAdmin:
    """A provider's admin side, at `url`, with the admin `token`."""

    url: str
    token: str

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            timeout=_TIMEOUT_S,
            headers={"Authorization": f"Bearer {self.token}"},
        )

    async def health(self) -> str:
        """Return the provider's health report; fail unless it answers 200."""
        async with self._client() as client:
            return (await client.get("/healthz")).raise_for_status().text

    async def charges(self) -> list[dict[str, Any]]:
        """Return every charge in the ledger, in id order."""
        found: list[dict[str, Any]] = []
        after: int | None = 0
        async with self._client() as client:
            while after is not None:
                response = await client.get("/charges", params={"after": after, "limit": 10_000})
                page = response.raise_for_status().json()
                found += page["charges"]
                after = page["next"]
        return found

    async def held(self) -> int:
        """Return how many requests a hang holds now (from `/metrics`)."""
        async with self._client() as client:
            text = (await client.get("/metrics")).raise_for_status().text
        return next(
            int(float(line.split()[1]))
            for line in text.splitlines()
            if line.startswith(f"{HELD_METRIC} ")
        )

    async def set_faults(self, **plan: Any) -> None:
        """Put a fault plan in force (fields left out are off)."""
        async with self._client() as client:
            (await client.put("/v1/faults", json=plan)).raise_for_status()

    async def reset(self) -> None:
        """Lift every fault and empty the ledger."""
        await self.set_faults()
        async with self._client() as client:
            (await client.delete("/charges")).raise_for_status()
