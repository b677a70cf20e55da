"""Rules: which algorithm limits what, how much, and what to do when Redis is away.

A rule names an algorithm and a limit per period, a fail mode and a shadow flag, and
may give particular keys their own limit (a tenant on a bigger plan). Rules are
validated here, once, when they are written: a check never meets a rule it cannot
run. The fail mode decides when Redis cannot be reached: `closed` denies, `open`
allows, `local` (the default) counts in this process with the same algorithm, so
protection degrades to per-instance limits instead of vanishing.
"""

import re
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rate_limiter.domain import MAX_PERIOD_MS, Algorithm, Limit

MAX_UNITS = 1_000_000_000
RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

RuleName = Annotated[str, Field(pattern=RULE_NAME.pattern, examples=["api-per-second"])]


class FailMode(StrEnum):
    """What a check answers while Redis cannot be reached."""

    OPEN = "open"
    CLOSED = "closed"
    LOCAL = "local"


class LimitSpec(BaseModel):
    """The numbers of a limit: units per period, and an optional burst capacity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(ge=1, le=MAX_UNITS, description="Units allowed per period.")
    period_ms: int = Field(ge=1, le=MAX_PERIOD_MS, description="The period, in milliseconds.")
    burst: int | None = Field(
        default=None,
        ge=1,
        le=MAX_UNITS,
        description="Bucket capacity for token_bucket and gcra (defaults to limit).",
    )


class RuleSpec(LimitSpec):
    """A rule as written by an operator (the name comes from the URL)."""

    algorithm: Algorithm
    fail_mode: FailMode = FailMode.LOCAL
    shadow: bool = Field(default=False, description="Decide and report, but always allow.")
    overrides: dict[str, LimitSpec] = Field(
        default_factory=dict, description="Per-key limits, e.g. a tenant with its own plan."
    )

    @model_validator(mode="after")
    def _limits_are_runnable(self) -> Self:
        """Build every limit once, so an invalid combination fails here and not in a check."""
        _ = self._own_limit, self._override_limits
        return self

    def limit_for(self, key: str) -> Limit:
        """Return the limit that applies to `key`: its override, or the rule's own."""
        return self._override_limits.get(key) or self._own_limit

    @cached_property
    def _own_limit(self) -> Limit:
        """The rule's limit, built (and validated) once: checks ask for it on every request."""
        return Limit(self.algorithm, self.limit, self.period_ms, self.burst)

    @cached_property
    def _override_limits(self) -> dict[str, Limit]:
        return {
            key: Limit(self.algorithm, spec.limit, spec.period_ms, spec.burst)
            for key, spec in self.overrides.items()
        }


class Rule(RuleSpec):
    """A stored rule: its spec and its name."""

    name: RuleName

    @classmethod
    def named(cls, name: str, spec: RuleSpec) -> "Rule":
        """Return `spec` stored under `name`."""
        return cls(name=name, **spec.model_dump())
