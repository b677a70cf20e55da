"""`redis-lock`: a lock with a TTL in Redis, then the response cached under the key.

Pattern (as AWS Lambda Powertools' idempotency with a Redis or DynamoDB store): one
Lua script (`acquire.lua`) either creates the key's record — `in_flight`, with a random
owner token, expiring after `IDEMPOTENCY_LOCK_TTL_MS` — or returns the record that is
there, which `domain.decide()` turns into a replay, a 409 or a 422. The owner charges,
commits the payment to PostgreSQL, and stores the response (`complete.lua`) only if
its token still owns the record; on a provider failure it releases the record
(`release.lua`), again only if it still owns it. A lock released without checking its
owner would free another request's lock: the bug those checks exist for.

What it survives: concurrent duplicates (one wins the lock; the rest get 409 or, once
it finished, the replay), and a lost answer after the response was stored.

What it does not, shown rather than hidden:
- **TTL expiry.** The lock lasts `IDEMPOTENCY_LOCK_TTL_MS` whatever the owner is
  doing. A charge slower than that (a slow provider, a GC pause, a stalled process)
  lets a retry take the key and charge again while the first still runs: a duplicate
  charge. The first finds its token gone at `complete.lua` and stores nothing
  (`idempotency_redis_locks_lost` counts it). A longer TTL narrows the window and
  lengthens the time a crashed owner blocks retries; no TTL closes it.
- **A crash after the charge** leaves the record `in_flight` until the TTL ends;
  the retry after that charges again, since nothing but the lock recorded the work.
- **Eviction or a restart without persistence** loses records: a retry of a finished
  key, after that, charges again.
The provider is sent no downstream key, as a cache-in-front design would not have one.
"""

import dataclasses
import hashlib
import json
import logging
import math
import uuid
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from idempotency.domain import (
    KeyRecord,
    Payment,
    RecordState,
    StoredResponse,
    StrategyName,
    decide,
)
from idempotency.provider_client import ProviderUnavailableError
from idempotency.strategies.base import Answer, PaymentCommand, replay_of
from idempotency.toolkit import Toolkit
from labs.keys import KeyBuilder
from labs.lua import load

ACQUIRE = load("idempotency.lua", "acquire")
COMPLETE = load("idempotency.lua", "complete")
RELEASE = load("idempotency.lua", "release")
_log = logging.getLogger(__name__)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def held_record(reply: list[Any]) -> KeyRecord | None:
    """Return the record `acquire.lua` found, or None when it took the lock."""
    if not reply:
        return None
    state, fingerprint, response = (_text(value) for value in reply[:3])
    return KeyRecord(
        fingerprint=fingerprint,
        state=RecordState(state),
        response=StoredResponse(**json.loads(response)) if response else None,
        retry_after_s=max(1, math.ceil(int(reply[3]) / 1000)),
    )


class RedisLock:
    """A Redis lock with a TTL and a token-checked release, then a cached response."""

    name = StrategyName.REDIS_LOCK
    takes_key = True
    summary = (
        "a Redis lock with a TTL (SET NX PX), token-checked, then the response cached; "
        "a charge slower than the TTL, a crash or an eviction charges twice"
    )

    def __init__(
        self, kit: Toolkit, redis: Redis, keys: KeyBuilder, on_lock_lost: Callable[[], None]
    ) -> None:
        """Keep records under `keys`; call `on_lock_lost` when a request outlives its lock."""
        self._kit = kit
        self._redis = redis
        self._keys = keys
        self._on_lock_lost = on_lock_lost

    def record_key(self, command: PaymentCommand) -> str:
        """Return the Redis key of the command's key record."""
        scope = str(command.require_key()).encode()
        return self._keys.key("key", hashlib.sha256(scope).hexdigest())

    async def create_payment(self, command: PaymentCommand) -> Answer:
        """Take the lock (or replay), charge, commit, then cache the response if still owner."""
        kit = self._kit
        record = [self.record_key(command)]
        token = uuid.uuid4().hex
        fingerprint = command.request.fingerprint()
        reply = await ACQUIRE(self._redis, record, [token, fingerprint, kit.settings.lock_ttl_ms])
        replay = replay_of(decide(held_record(reply), fingerprint))
        if replay is not None:
            return replay
        payment = Payment.new(command.principal, self.name, command.request, kit.now())
        try:
            payment = await kit.charge(payment, downstream_key=None)
        except ProviderUnavailableError:
            await RELEASE(self._redis, record, [token])
            raise
        async with kit.engine.begin() as conn:
            await kit.store.insert_payment(conn, payment)
        answer = Answer.created(payment)
        response = json.dumps(dataclasses.asdict(answer.stored()))
        ttl_ms = kit.settings.key_ttl_s * 1000
        if not await COMPLETE(self._redis, record, [token, response, ttl_ms]):
            self._on_lock_lost()
            _log.warning("redis-lock: payment %s finished after its lock was lost", payment.id)
        kit.committed()
        return answer
