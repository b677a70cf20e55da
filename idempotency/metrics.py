"""The idempotency API's Prometheus metrics: what each strategy answered, and why.

Payments answered fresh, by strategy and resulting status; replays, conflicts (409),
mismatches (422) and provider failures (502), by strategy; the recovery-points
completer's runs by result; and the redis-lock completions that found their lock
gone (its TTL ran out, or Redis lost it): each one a window in which a retry may have
charged a second time. Labels are the six strategy names and a few fixed results,
so cardinality is bounded.
"""

from prometheus_client import CollectorRegistry, Counter

from idempotency.domain import KeyInFlightError, KeyReusedError, StrategyName
from idempotency.strategies.base import Answer

_STRATEGY = ["strategy"]


class IdempotencyMetrics:
    """The API's metrics in one app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        """Register the metrics in `registry`."""
        self.payments = Counter(
            "idempotency_payments",
            "Payments answered fresh (not replayed), by strategy and status",
            ["strategy", "status"],
            registry=registry,
        )
        self.replays = Counter(
            "idempotency_replays",
            "Answers replayed to a repeated key",
            _STRATEGY,
            registry=registry,
        )
        self.conflicts = Counter(
            "idempotency_conflicts",
            "409s: the key's first request in flight",
            _STRATEGY,
            registry=registry,
        )
        self.mismatches = Counter(
            "idempotency_mismatches",
            "422s: the key reused with another payload",
            _STRATEGY,
            registry=registry,
        )
        self.provider_errors = Counter(
            "idempotency_provider_errors",
            "502s: no definitive answer from the provider",
            _STRATEGY,
            registry=registry,
        )
        self.completer_runs = Counter(
            "idempotency_completer_runs",
            "recovery-points keys the completer took over, by result",
            ["result"],
            registry=registry,
        )
        self.locks_lost = Counter(
            "idempotency_redis_locks_lost",
            "redis-lock requests that finished after losing their lock",
            registry=registry,
        )

    def answered(self, strategy: StrategyName, answer: Answer) -> None:
        """Count an answer sent for `strategy`."""
        if answer.replayed:
            self.replays.labels(strategy).inc()
        else:
            self.payments.labels(strategy, answer.body.get("status", "unknown")).inc()

    def count_completer_run(self, result: str) -> None:
        """Count a key the completer took over, by `result` (`finished` or `failed`)."""
        self.completer_runs.labels(result).inc()

    def refused(self, strategy: StrategyName, exc: Exception) -> None:
        """Count a 409, 422 or 502 sent for `strategy`."""
        if isinstance(exc, KeyInFlightError):
            counter = self.conflicts
        elif isinstance(exc, KeyReusedError):
            counter = self.mismatches
        else:
            counter = self.provider_errors
        counter.labels(strategy).inc()
