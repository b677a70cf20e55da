"""The decision engine: rule lookup, validation, Redis, and the fail modes.

A check names a rule, a key and a cost. The engine resolves the rule (and the key's
override), refuses a cost the rule could never allow, and asks Redis in one script
call; a batch is decided all-or-nothing in that same single call. When Redis fails,
the rule's fail mode decides and the verdict says so (`decided_by`), and Redis is
skipped for a short window so that an outage costs no timeouts; the first call after
the window tries Redis again, which is how the service recovers by itself. A shadow
rule is decided and reported like any other, but never denies.

Batches follow Redis Cluster's hash-tag rule: every key in a batch must share one tag
(`{tenant-7}` and `{tenant-7}:user-3` do), so one script can touch them all on one
node. A single key's tag is its `{...}` part, or the whole key.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from redis.exceptions import RedisError

from rate_limiter.domain import Decision, Limit
from rate_limiter.fallback import LocalLimiter, RedisOutage
from rate_limiter.rules import FailMode, Rule
from rate_limiter.store import RedisLimiter


class RuleSource(Protocol):
    """Where the engine finds rules: the service's RuleBook, or an app's fixed rules."""

    def get(self, name: str) -> Rule | None:
        """Return the rule called `name`, if there is one."""
        ...


class FixedRules:
    """Rules given in code, for an app that limits its own routes."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        """Serve `rules` by name."""
        self._rules = {rule.name: rule for rule in rules}

    def get(self, name: str) -> Rule | None:
        """Return the rule called `name`."""
        return self._rules.get(name)


class DecidedBy(StrEnum):
    """Which path produced a decision."""

    REDIS = "redis"
    LOCAL = "local"
    FAIL_OPEN = "fail_open"
    FAIL_CLOSED = "fail_closed"


@dataclass(frozen=True)
class CheckRequest:
    """One check: charge `cost` units to `key` under the rule called `rule`."""

    rule: str
    key: str
    cost: int = 1


@dataclass(frozen=True)
class Verdict:
    """A decision with the rule that made it and the path that decided it."""

    rule: Rule
    key: str
    decision: Decision
    decided_by: DecidedBy

    @property
    def allowed(self) -> bool:
        """Return whether the caller may proceed (a shadow rule always lets it)."""
        return self.decision.allowed or self.rule.shadow


class UnknownRuleError(LookupError):
    """No rule has the requested name."""


class CostTooHighError(ValueError):
    """The cost exceeds what the rule can ever allow for the key."""


class InvalidBatchError(ValueError):
    """A batch whose keys span hash tags, or that names one rule and key twice."""


def hash_tag(key: str) -> str:
    """Return the key's Redis Cluster hash tag: the first non-empty `{...}`, else the key."""
    start = key.find("{")
    end = key.find("}", start + 1)
    if start != -1 and end > start + 1:
        return key[start + 1 : end]
    return key


_FAIL_MODE_STRICTNESS = (FailMode.CLOSED, FailMode.LOCAL, FailMode.OPEN)


class Engine:
    """Decides checks on Redis, falling back by each rule's fail mode."""

    def __init__(
        self,
        redis_limiter: RedisLimiter,
        rules: RuleSource,
        local: LocalLimiter,
        outage: RedisOutage,
        observe: Callable[[Sequence[Verdict]], None] = lambda _: None,
    ) -> None:
        """Wire the engine to its Redis limiter, rules and fallbacks."""
        self._redis = redis_limiter
        self._rules = rules
        self._local = local
        self._outage = outage
        self._observe = observe

    async def check(self, request: CheckRequest, *, peek: bool = False) -> Verdict:
        """Decide one check."""
        return (await self.check_all([request], peek=peek))[0]

    async def check_all(
        self, requests: Sequence[CheckRequest], *, peek: bool = False
    ) -> list[Verdict]:
        """Decide several checks all-or-nothing: none consumes unless all are allowed."""
        rules = [self._rule(request.rule) for request in requests]
        checks = [_charge(rule, request) for rule, request in zip(rules, requests, strict=True)]
        tag = _shared_tag(requests)
        decisions, decided_by = await self._decide(tag, checks, rules, peek=peek)
        verdicts = [
            Verdict(rule, request.key, decision, decided_by)
            for rule, request, decision in zip(rules, requests, decisions, strict=True)
        ]
        self._observe(verdicts)
        return verdicts

    def _rule(self, name: str) -> Rule:
        rule = self._rules.get(name)
        if rule is None:
            raise UnknownRuleError(name)
        return rule

    async def _decide(
        self, tag: str, checks: list[tuple[str, Limit, int]], rules: list[Rule], *, peek: bool
    ) -> tuple[list[Decision], DecidedBy]:
        if self._outage.redis_usable():
            try:
                return await self._redis.check_all(tag, checks, peek=peek), DecidedBy.REDIS
            except (RedisError, OSError):
                self._outage.failed()
        return self._fallback(checks, rules, peek=peek)

    def _fallback(
        self, checks: list[tuple[str, Limit, int]], rules: list[Rule], *, peek: bool
    ) -> tuple[list[Decision], DecidedBy]:
        mode = next(
            mode for mode in _FAIL_MODE_STRICTNESS if any(r.fail_mode is mode for r in rules)
        )
        if mode is FailMode.LOCAL:
            return self._local.check_all(checks, peek=peek), DecidedBy.LOCAL
        allowed = mode is FailMode.OPEN
        retry_after = 0 if allowed else max(1, self._outage.retry_after_ms)
        decisions = [
            Decision(
                allowed=allowed,
                limit=limit.capacity,
                remaining=0,
                reset_after_ms=retry_after,
                retry_after_ms=retry_after,
            )
            for _, limit, _ in checks
        ]
        return decisions, DecidedBy.FAIL_OPEN if allowed else DecidedBy.FAIL_CLOSED


def _charge(rule: Rule, request: CheckRequest) -> tuple[str, Limit, int]:
    limit = rule.limit_for(request.key)
    if request.cost > limit.capacity:
        raise CostTooHighError(
            f"cost {request.cost} exceeds what rule {rule.name!r} can ever allow "
            f"for this key ({limit.capacity})"
        )
    return f"{rule.name}:{request.key}", limit, request.cost


def _shared_tag(requests: Sequence[CheckRequest]) -> str:
    if len({(request.rule, request.key) for request in requests}) != len(requests):
        raise InvalidBatchError(
            "a batch names the same rule and key twice: send one check with their total cost"
        )
    tags = {hash_tag(request.key) for request in requests}
    if len(tags) != 1:
        raise InvalidBatchError(
            f"the keys of a batch must share one hash tag, like {{tenant}} and {{tenant}}:user; "
            f"got {len(tags)} tags"
        )
    return tags.pop()
