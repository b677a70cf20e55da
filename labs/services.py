"""The services `lab serve` can run, by name.

Each entry names an app factory by import path, so listing services imports none of
them, and services never import each other. Issues that add a service add a line here.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    """A service that `lab serve <name>` runs."""

    name: str
    factory: str
    summary: str
    default_port: int
    needs: tuple[str, ...] = ()


SERVICES: dict[str, Service] = {
    service.name: service
    for service in (
        Service(
            "servers",
            "labs.servers_api:create_app",
            "the real servers' health over HTTP",
            8100,
            ("redis_url", "database_url", "kafka_bootstrap_servers"),
        ),
        Service(
            "rate-limiter",
            "rate_limiter.app:create_app",
            "five rate-limit algorithms on Redis server time",
            8101,
            ("redis_url",),
        ),
        Service(
            "scheduler",
            "scheduler.app:create_app",
            "jobs over HTTP: enqueue, status and history, dead-letter admin",
            8102,
            ("redis_url", "database_url"),
        ),
        Service(
            "webhook-sink",
            "scheduler.sink:create_app",
            "a webhook receiver that counts duplicates, with injectable faults",
            8103,
            ("redis_url",),
        ),
        Service(
            "idempotency",
            "idempotency.app:create_app",
            "payments under six idempotency strategies, with the provider it needs",
            8104,
            ("redis_url", "database_url", "kafka_bootstrap_servers"),
        ),
        Service(
            "payment-provider",
            "idempotency.provider:create_app",
            "a payment provider that keeps the ledger of truth, with injectable faults",
            8105,
            ("database_url",),
        ),
    )
}
