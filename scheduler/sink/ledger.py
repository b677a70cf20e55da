"""The webhook sink's ledger in Redis: every delivery counted, every idempotency key tallied.

Pattern: one Lua script records a delivery atomically — the totals by hook and by
status, HINCRBY of its idempotency key's successful deliveries, and a duplicate when
that key had succeeded before — so concurrent deliveries never race and the counts
always add up. Guarantee: the ledger lives in Redis under the sink's own key prefix
`P`, so it survives a sink restart and an experiment can read it directly:

| key | type | holds |
| --- | --- | --- |
| `P:{ledger}:delivered` | hash | idempotency key -> deliveries of it answered 2xx |
| `P:{ledger}:totals` | hash | `deliveries`, `duplicates`, `hook:<name>`, `status:<code>` |

Failure it makes visible: a duplicate, a key delivered successfully more than once,
which an at-least-once sender produces whenever it retries a delivery that had in fact
arrived (its answer lost, timed out, or its worker killed before the ack).
"""

from pydantic import BaseModel, Field
from redis.asyncio import Redis, RedisCluster

from labs.keys import KeyBuilder
from labs.lua import load

RECORD = load("scheduler.lua", "sink_record")


class Received(BaseModel):
    """What the sink has received since the ledger was last reset."""

    deliveries: int = Field(description="Deliveries received, whatever the answer.")
    unique_keys: int = Field(description="Distinct idempotency keys answered 2xx.")
    duplicates: int = Field(description="2xx deliveries of a key that had one already.")
    by_hook: dict[str, int] = Field(description="Deliveries per hook name.")
    by_status: dict[int, int] = Field(description="Deliveries per status answered.")


class Ledger:
    """The sink's delivery counts in Redis."""

    def __init__(self, redis: Redis | RedisCluster, keys: KeyBuilder) -> None:
        """Keep the ledger under `keys`' prefix."""
        self._redis = redis
        self._delivered = keys.tagged("ledger", "delivered")
        self._totals = keys.tagged("ledger", "totals")

    async def record(self, hook: str, idempotency_key: str, status: int) -> int:
        """Count a delivery answered `status`; return its key's 2xx deliveries (0 if not 2xx)."""
        success = int(200 <= status < 300)  # noqa: PLR2004 - the 2xx class
        args = (idempotency_key, hook, status, success)
        return int(await RECORD(self._redis, (self._delivered, self._totals), args))

    async def received(self) -> Received:
        """Return the totals, read in one transaction so they are consistent."""
        async with self._redis.pipeline(transaction=True) as pipe:
            _ = pipe.hgetall(self._totals)
            _ = pipe.hlen(self._delivered)
            totals, unique_keys = await pipe.execute()
        counts = {field.decode(): int(value) for field, value in totals.items()}
        return Received(
            deliveries=counts.get("deliveries", 0),
            unique_keys=unique_keys,
            duplicates=counts.get("duplicates", 0),
            by_hook=_with_prefix(counts, "hook:"),
            by_status={int(code): n for code, n in _with_prefix(counts, "status:").items()},
        )

    async def reset(self) -> None:
        """Forget every delivery."""
        await self._redis.delete(self._delivered, self._totals)


def _with_prefix(counts: dict[str, int], prefix: str) -> dict[str, int]:
    return {
        field.removeprefix(prefix): count
        for field, count in counts.items()
        if field.startswith(prefix)
    }
