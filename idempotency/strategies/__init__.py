"""The six idempotency strategies, one module each, all behind `base.Strategy`.

| strategy | where the key's record lives | module |
| --- | --- | --- |
| `none` | nowhere: the baseline | `none.py` |
| `db-unique` | a unique row in the payment's transaction | `db_unique.py` |
| `redis-lock` | a Redis hash: `SET NX PX`-style lock, then the cached response | `redis_lock.py` |
| `recovery-points` | a row moved through atomic phases, with a completer | `recovery_points.py` |
| `outbox` | a unique row with the payment and its event; a consumer charges | `outbox.py` |
| `natural-key` | no key: the payment's own fields within a time window | `natural_key.py` |
"""

from idempotency.domain import StrategyName
from idempotency.strategies.base import Strategy, Toolkit
from idempotency.strategies.db_unique import DbUnique
from idempotency.strategies.none import NoIdempotency


def build_strategies(kit: Toolkit) -> dict[StrategyName, Strategy]:
    """Return every strategy, by name, working with `kit`."""
    strategies: list[Strategy] = [NoIdempotency(kit), DbUnique(kit)]
    return {strategy.name: strategy for strategy in strategies}
