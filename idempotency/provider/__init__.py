"""A payment provider as its own process: it executes charges and keeps the ledger of truth.

The idempotency strategies are judged against this ledger: every charge the provider
executed, with the downstream idempotency key it received (`GET /charges`). It
deduplicates on that key, as real processors do, and its faults (latency, errors, an
outage, a hang, "charge then drop the answer") are injectable on demand
(`PUT /v1/faults`). Run it with `lab serve payment-provider`; `lab serve idempotency`
starts one for the API when `IDEMPOTENCY_PROVIDER_URL` is not set.
"""

from idempotency.provider.app import PaymentProviderSettings, create_app

__all__ = ["PaymentProviderSettings", "create_app"]
