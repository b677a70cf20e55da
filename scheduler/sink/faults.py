"""Fault injection for the webhook sink: latency, an error rate, an outage and a hang.

Pattern: a fault plan (`Faults`, validated, replaced whole by each change) and a
`FaultInjector` that decides each delivery's fate from the plan in force when it
arrives: held while a hang lasts, then delayed by `latency_ms`, then refused by an
outage, then refused with probability `error_rate`. Guarantee: chance comes from one
`random.Random` reseeded with the configured seed at every change of plan, so the
number of refusals among the first n deliveries after a change is fixed by the seed
and the rate, whichever delivery draws which number; latency waits on the injected
clock. Failures it models: a slow downstream (`latency_ms`), a flaky one
(`error_rate`), one that is down (`outage`: every delivery refused), and one that
takes the request and never answers (`hang`: held until the hang is lifted, so the
sender's timeout is what ends it, and then refused).
"""

import asyncio
import random
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from labs.clock import Clock

MAX_LATENCY_MS = 600_000


class Fault(StrEnum):
    """Why the sink refused a delivery."""

    HANG = "hang"
    OUTAGE = "outage"
    ERROR_RATE = "error_rate"


class Faults(BaseModel):
    """A fault plan: each field off by default, so `{}` is a healthy receiver."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: int = Field(default=0, ge=0, le=MAX_LATENCY_MS, description="Delay per answer.")
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="Share refused with 503.")
    outage: bool = Field(default=False, description="Refuse every delivery with 503.")
    hang: bool = Field(default=False, description="Never answer until the hang is lifted.")


class FaultInjector:
    """Applies the fault plan in force to each delivery."""

    def __init__(self, clock: Clock, seed: int) -> None:
        """Start with no faults; `seed` makes the error-rate draws reproducible."""
        self._clock = clock
        self._seed = seed
        self._rng = random.Random(seed)
        self._plan = Faults()
        self._hang_lifted = asyncio.Event()
        self._hang_lifted.set()
        self.held = 0
        """Deliveries waiting now for a hang to be lifted."""

    @property
    def plan(self) -> Faults:
        """Return the plan in force."""
        return self._plan

    def change(self, plan: Faults) -> None:
        """Put `plan` in force, restart the draws from the seed, and free held deliveries."""
        self._plan = plan
        self._rng.seed(self._seed)
        if plan.hang:
            self._hang_lifted.clear()
        else:
            self._hang_lifted.set()

    async def apply(self) -> Fault | None:
        """Wait as the plan says; return the fault that refuses this delivery, if any."""
        plan = self._plan
        if plan.hang:
            self.held += 1
            try:
                await self._hang_lifted.wait()
            finally:
                self.held -= 1
            return Fault.HANG
        if plan.latency_ms:
            await self._clock.sleep(plan.latency_ms / 1000)
        if plan.outage:
            return Fault.OUTAGE
        if plan.error_rate and self._rng.random() < plan.error_rate:
            return Fault.ERROR_RATE
        return None
