"""A webhook receiver with fault injection: the target of the scheduler's `webhook` jobs.

It counts every delivery by idempotency key in Redis, so an experiment can tell how
many jobs arrived, and how many arrived more than once; and it can be made slow,
flaky, down or silent on demand (`PUT /v1/faults`), so the circuit breaker and the
chaos experiments have a downstream to degrade. Run it with `lab serve webhook-sink`.
"""

from scheduler.sink.app import WebhookSinkSettings, create_app

__all__ = ["WebhookSinkSettings", "create_app"]
