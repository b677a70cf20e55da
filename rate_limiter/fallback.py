"""What decides while Redis cannot: a short outage window and a bounded local limiter.

`RedisOutage` is a minimal breaker: after a Redis error, checks skip Redis for a short
window (instead of each waiting out a timeout) and then try it again, so the service
recovers by itself as soon as Redis answers. `LocalLimiter` runs the same algorithm
models that specify the Lua scripts, in this process, for rules whose fail mode is
`local`; it keeps at most `max_keys` keys (least recently used go first), so an
outage under a flood of distinct keys cannot exhaust memory.
"""

from collections import OrderedDict
from collections.abc import Sequence

from labs.clock import Clock
from rate_limiter.domain import Decision, Limit
from rate_limiter.models import Model, check_all, model_for


class RedisOutage:
    """Remembers a Redis failure for `window_s`, during which Redis is not tried."""

    def __init__(self, clock: Clock, window_s: float) -> None:
        """Skip Redis for `window_s` after each failure."""
        self._clock = clock
        self._window_s = window_s
        self._until = float("-inf")

    def redis_usable(self) -> bool:
        """Return True when Redis should be tried."""
        return self._clock.monotonic() >= self._until

    def failed(self) -> None:
        """Note a failure: skip Redis for the window."""
        self._until = self._clock.monotonic() + self._window_s

    @property
    def retry_after_ms(self) -> int:
        """Return how long until Redis is tried again (for fail-closed answers)."""
        return max(0, round((self._until - self._clock.monotonic()) * 1000))


class LocalLimiter:
    """Per-process limiting with the algorithms' models, bounded to `max_keys` keys."""

    def __init__(self, clock: Clock, max_keys: int) -> None:
        """Keep at most `max_keys` keys' state."""
        self._clock = clock
        self._max_keys = max_keys
        self._models: OrderedDict[tuple[str, Limit], Model] = OrderedDict()

    def check_all(
        self, checks: Sequence[tuple[str, Limit, int]], *, peek: bool = False
    ) -> list[Decision]:
        """Decide all-or-nothing, exactly as the Redis script does, on this process's clock."""
        now_us = int(self._clock.time() * 1_000_000)
        models = [(self._model(key, limit), cost) for key, limit, cost in checks]
        return check_all(models, now_us, peek=peek)

    def _model(self, key: str, limit: Limit) -> Model:
        slot = (key, limit)
        model = self._models.get(slot)
        if model is None:
            model = self._models[slot] = model_for(limit)
            while len(self._models) > self._max_keys:
                self._models.popitem(last=False)
        else:
            self._models.move_to_end(slot)
        return model

    def __len__(self) -> int:
        """Return how many keys have local state."""
        return len(self._models)
