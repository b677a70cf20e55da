"""Demos: short runs on the real servers, each proving one guarantee with its numbers.

A demo is an async function taking a `DemoContext` and returning a `DemoOutcome`
whose one-line summary says what it proved and the figures it measured. `lab demo`
runs them all; issues that add a part of the lab add their demo to `DEMOS`.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from labs.imports import LazyEntry
from labs.settings import ServerUrls


@dataclass(frozen=True)
class DemoContext:
    """What a demo gets: the servers, a place for files, and a progress callback."""

    urls: ServerUrls
    state_dir: Path
    progress: Callable[[str], None]


@dataclass(frozen=True)
class DemoOutcome:
    """Whether the demo proved its guarantee, in one line with the measured figures."""

    proved: bool
    summary: str


class DemoFailedError(Exception):
    """Raised inside a demo when the servers did not behave as the guarantee says."""


DemoFunction = Callable[[DemoContext], Awaitable[DemoOutcome]]


@dataclass(frozen=True)
class Demo(LazyEntry[DemoFunction]):
    """A demo, named for `lab demo <name>`, imported only when it runs."""


DEMOS: dict[str, Demo] = {
    demo.name: demo
    for demo in (
        Demo("smoke", "labs.demos.smoke:run", "write and read back each real server"),
        Demo(
            "rate-limiter",
            "rate_limiter.demo:run",
            "exact limits under 1000 concurrent requests, and what a denied client sees",
        ),
        Demo(
            "clock-skew",
            "rate_limiter.experiments.clock_skew:demo",
            "Redis-time limiters stay exact while client clocks are skewed by ±200 ms",
        ),
        Demo(
            "scheduler",
            "scheduler.demo:run",
            "2,000 jobs while workers are SIGKILLed and restarted: none lost, duplicates bounded",
        ),
        Demo(
            "scheduler-breaker",
            "scheduler.breaker_demo:run",
            "a webhook host goes down: its breaker halts only its jobs, spending no attempts",
        ),
        Demo(
            "failure-sim",
            "labs.failsim.demo:run",
            "backoff jitter under contention, a breaker under an outage, idempotency keys",
        ),
    )
}
