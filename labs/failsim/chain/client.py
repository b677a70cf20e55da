"""A dependency client: one edge of the chain, its policies wrapped around an HTTP call.

Pattern: the adapter between the pure policies and HTTP. It sends the remaining
deadline (`X-Deadline-Ms`) and the idempotency key on every attempt, and turns each
answer into a result or a `DependencyFailedError`: a 5xx, a broken connection or a
lost answer is retryable, unless the answer carries `X-Do-Not-Retry` (a hop below
gave up already: retrying it multiplies load, the SRE book's "retry at one layer")
and the policy honours it. It counts every request, attempt and refusal in
`EdgeStats`.

Idempotency keys: the key a hop received is passed down unchanged, so a retry at any
layer above reuses it; the first edge whose policy asks for keys mints one per logical
call. The HTTP pool is shared by every dependency of the hop, as in most services:
the resource a bulkhead protects.
"""

import random
import time
import uuid
from typing import Any

import httpx

from labs.clock import Clock
from labs.failsim.chain.stats import EdgeStats, Transition
from labs.failsim.config import EdgePolicy
from labs.failsim.policies import (
    DEADLINE_HEADER,
    BreakerState,
    CallRejectedError,
    Deadline,
    DependencyFailedError,
    Policies,
    Rejection,
)

DO_NOT_RETRY_HEADER = "X-Do-Not-Retry"
IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
WORK_PATH = "/v1/work"


class DependencyClient:
    """Calls one dependency's `/v1/work` through the edge's policies."""

    def __init__(
        self,
        base_url: str,
        http: httpx.AsyncClient,
        policy: EdgePolicy,
        clock: Clock,
        seed: int,
    ) -> None:
        """Build the edge's policies (fresh breaker, budget and bulkhead) from `policy`."""
        self._url = base_url.rstrip("/") + WORK_PATH
        self._http = http
        self._clock = clock
        self.policy = policy
        self.stats = EdgeStats()
        self._policies: Policies = policy.build(clock, random.Random(seed), self._transition)

    async def call(
        self, request_id: str, route: list[str], deadline: Deadline, key: str | None = None
    ) -> dict[str, Any]:
        """Send the work on, as the policies allow; return the dependency's answer."""
        if key is None and self.policy.idempotency_keys:
            key = uuid.uuid4().hex
        body = {"request_id": request_id, "route": route}
        started = time.perf_counter()
        self.stats.requests += 1

        async def attempt() -> dict[str, Any]:
            return await self._attempt(body, deadline, key)

        try:
            answer = await self._policies.call(attempt, deadline)
        except CallRejectedError as refused:
            self.stats.reject(refused.reason)
            if refused.reason is Rejection.BREAKER_OPEN:
                self.stats.fail_fast((time.perf_counter() - started) * 1000)
            raise
        except DependencyFailedError:
            self.stats.failed += 1
            raise
        self.stats.succeeded += 1
        return answer

    async def _attempt(
        self, body: dict[str, Any], deadline: Deadline, key: str | None
    ) -> dict[str, Any]:
        self.stats.attempts += 1
        headers = {DEADLINE_HEADER: deadline.header_value()}
        if key is not None:
            headers[IDEMPOTENCY_HEADER] = key
        try:
            response = await self._http.post(self._url, json=body, headers=headers, timeout=None)
        except httpx.TransportError as exc:  # refused, reset, or an answer lost mid-way
            raise DependencyFailedError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        if response.is_success:
            answer: dict[str, Any] = response.json()
            return answer
        marked = DO_NOT_RETRY_HEADER in response.headers and self.policy.retry.honour_do_not_retry
        retryable = response.status_code in RETRYABLE_STATUSES and not marked
        raise DependencyFailedError(f"answered {response.status_code}", retryable=retryable)

    def reset_stats(self) -> None:
        """Zero this edge's counts (its policies keep their state)."""
        self.stats = EdgeStats()

    def _transition(self, state: BreakerState) -> None:
        self.stats.transitions.append(Transition(state=state, at=self._clock.time()))
