"""The six idempotency strategies, one module each, all behind `base.Strategy`.

| strategy | where the key's record lives | module |
| --- | --- | --- |
| `none` | nowhere: the baseline | `none.py` |
| `db-unique` | a unique row in the payment's transaction | `db_unique.py` |
| `redis-lock` | a Redis hash: a lock with a TTL, then the cached response | `redis_lock.py` |
| `recovery-points` | a row moved through atomic phases, with a completer | `recovery_points.py` |
| `outbox` | a unique row with the payment and its event; a consumer charges | `outbox.py` |
| `natural-key` | no key: the payment's own fields within a time window | `natural_key.py` |
"""

from collections.abc import Callable

from redis.asyncio import Redis

from idempotency.domain import StrategyName
from idempotency.strategies.base import Strategy
from idempotency.strategies.db_unique import DbUnique
from idempotency.strategies.natural_key import NaturalKey
from idempotency.strategies.none import NoIdempotency
from idempotency.strategies.outbox import OutboxCharge
from idempotency.strategies.recovery_points import RecoveryPoints
from idempotency.strategies.redis_lock import RedisLock
from idempotency.toolkit import Toolkit
from labs.keys import KeyBuilder


def build_strategies(
    kit: Toolkit, redis: Redis, keys: KeyBuilder, on_lock_lost: Callable[[], None]
) -> dict[StrategyName, Strategy]:
    """Return every strategy by name; redis-lock keeps its records under `keys`."""
    strategies: list[Strategy] = [
        NoIdempotency(kit),
        DbUnique(kit),
        RedisLock(kit, redis, keys, on_lock_lost),
        RecoveryPoints(kit),
        OutboxCharge(kit),
        NaturalKey(kit),
    ]
    return {strategy.name: strategy for strategy in strategies}
