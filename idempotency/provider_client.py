"""The API's and the charger's client of the payment provider, over HTTP.

Pattern: one pooled `httpx` client per process; each answer is sorted into what the
caller can act on. A charge either succeeded (the provider's charge id), was declined
for good (402: the payment fails, and that outcome is stored and replayed like any
other), or has no definitive answer — a 5xx, a timeout, a broken connection, anything
unexpected — which is `ProviderUnavailableError`.

Failure it makes explicit: "no definitive answer" does not mean "not charged". A
timeout after the provider committed is the lost-response case; only a downstream
idempotency key lets the caller ask again without risking a second charge, which is
why the API answers 502 (retry with the same key) and never guesses.
"""

import httpx

from idempotency.domain import Payment, RefundTooLargeError

_CHARGED = frozenset({200, 201})
_DECLINED = 402
_TOO_LARGE = 422


class ProviderUnavailableError(Exception):
    """The provider gave no definitive answer; the charge may or may not have happened."""


class ProviderClient:
    """Charges and refunds at the payment provider."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        """Call the provider at `base_url` through `http`."""
        self._http = http
        self.base_url = base_url.rstrip("/")

    async def charge(self, payment: Payment, downstream_key: str | None) -> int | None:
        """Charge the payment; return the charge id, or None when the card is declined."""
        headers = {} if downstream_key is None else {"Idempotency-Key": downstream_key}
        body = {"reference": payment.id, **payment.request.model_dump()}
        response = await self._post("/charges", body, headers)
        if response.status_code in _CHARGED:
            charge_id: int = response.json()["id"]
            return charge_id
        if response.status_code == _DECLINED:
            return None
        raise ProviderUnavailableError(f"the provider answered {response.status_code} to a charge")

    async def refund(self, charge_id: int, amount: int) -> int:
        """Refund part of a charge; return the refund's id."""
        response = await self._post("/refunds", {"charge_id": charge_id, "amount": amount}, {})
        if response.status_code == httpx.codes.CREATED:
            refund_id: int = response.json()["id"]
            return refund_id
        if response.status_code == _TOO_LARGE:
            raise RefundTooLargeError(f"the provider refused it: {response.text}")
        raise ProviderUnavailableError(f"the provider answered {response.status_code} to a refund")

    async def ping(self) -> None:
        """Fail unless the provider answers its health check with 200."""
        response = await self._http.get(f"{self.base_url}/healthz")
        response.raise_for_status()

    async def _post(
        self, path: str, body: dict[str, object], headers: dict[str, str]
    ) -> httpx.Response:
        try:
            return await self._http.post(f"{self.base_url}{path}", json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ProviderUnavailableError(f"no answer from the provider: {exc!r}") from exc
