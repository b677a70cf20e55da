"""The rule book: rules persisted in Redis, read from a cache in each process.

A check must not pay a Redis round trip to read its rule, so every instance keeps the
rules in memory. Writes go to a Redis hash and bump a version counter in one
transaction; each instance polls the counter (one GET per refresh interval) and
reloads when it moved, so a rule changed through one instance reaches the others
within the interval. While Redis is unreachable the cache keeps serving the last
rules it saw; at start, rules from the rules file are served even before Redis answers.
"""

import logging
import tomllib
from pathlib import Path

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from labs.clock import Clock
from labs.errors import LabError
from labs.keys import KeyBuilder
from rate_limiter.rules import Rule, RuleSpec

_log = logging.getLogger(__name__)


def read_rules_file(path: Path) -> list[Rule]:
    """Parse a TOML rules file: one `[rules.<name>]` table per rule."""
    try:
        document = tomllib.loads(path.read_text())
        tables = document.get("rules", {})
        return [Rule.named(name, RuleSpec.model_validate(table)) for name, table in tables.items()]
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LabError(f"rules file {path} is invalid: {reason}") from None


class RuleBook:
    """Rules by name, cached here, persisted in Redis."""

    def __init__(self, redis: Redis, keys: KeyBuilder) -> None:
        """Keep the rules under `keys` in `redis`."""
        self._redis = redis
        self._hash = keys.key("rules")
        self._version_key = keys.key("rules", "version")
        self._rules: dict[str, Rule] = {}
        self._version: int | None = None

    def get(self, name: str) -> Rule | None:
        """Return the cached rule called `name`."""
        return self._rules.get(name)

    def all(self) -> list[Rule]:
        """Return every cached rule, by name."""
        return [self._rules[name] for name in sorted(self._rules)]

    async def start(self, initial: list[Rule]) -> None:
        """Serve `initial` at once, then write it to Redis and load every stored rule."""
        self._rules |= {rule.name: rule for rule in initial}
        try:
            for rule in initial:
                await self.put(rule)
            await self.reload()
        except RedisError as exc:
            _log.warning("rules not loaded from Redis yet (%s); serving the rules file", exc)

    async def put(self, rule: Rule) -> bool:
        """Store `rule`; return True when it is new."""
        async with self._redis.pipeline(transaction=True) as tx:
            _ = tx.hset(self._hash, rule.name, rule.model_dump_json(exclude={"name"}))
            _ = tx.incr(self._version_key)
            created, _ = await tx.execute()
        self._rules[rule.name] = rule
        return bool(created)

    async def delete(self, name: str) -> bool:
        """Delete the rule called `name`; return True when there was one."""
        async with self._redis.pipeline(transaction=True) as tx:
            _ = tx.hdel(self._hash, name)
            _ = tx.incr(self._version_key)
            deleted, _ = await tx.execute()
        self._rules.pop(name, None)
        return bool(deleted)

    async def reload(self) -> None:
        """Replace the cache with what Redis holds."""
        async with self._redis.pipeline(transaction=True) as tx:
            _ = tx.get(self._version_key)
            _ = tx.hgetall(self._hash)
            version, stored = await tx.execute()
        self._rules = {
            name.decode(): Rule.named(name.decode(), RuleSpec.model_validate_json(body))
            for name, body in stored.items()
        }
        self._version = int(version or 0)

    async def refresh_if_changed(self) -> bool:
        """Reload when another instance changed the rules; return True if it did."""
        version = int(await self._redis.get(self._version_key) or 0)
        if version == self._version:
            return False
        await self.reload()
        return True

    async def keep_fresh(self, clock: Clock, interval_s: float) -> None:
        """Poll for changes forever, riding out Redis outages on the cached rules."""
        while True:
            await clock.sleep(interval_s)
            try:
                await self.refresh_if_changed()
            except RedisError as exc:
                _log.debug("rules refresh skipped: %s", exc)
