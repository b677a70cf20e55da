"""What every locustfile records besides Locust's own statistics: the tally `lab bench` reads.

A locustfile imports `TALLY`, counts into it from its tasks, and `lab bench` reads the
file it leaves (`BENCH_TALLY`) when Locust exits. The contract, the same for every
target: `responses` (answers checked), `rejected` (expected refusals such as a rate
limiter's 429: outcomes, not failures), `failures` (answers that broke the contract),
`checks` (the target's own counts; `mismatches`, where a target predicts every
answer, counts the answers that differ), exact latency percentiles and a histogram
(Locust's own percentiles are rounded to whole milliseconds), and a few `examples` of
what went wrong. Counting restarts once every user has spawned, as Locust's
`--reset-stats` does, so the ramp is not counted. While Locust runs, a small progress
file (`BENCH_PROGRESS`) says how far it got, once a second.
"""

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment

from benchmarks.timing import latency_histogram, latency_summary

TALLY_PATH = os.environ.get("BENCH_TALLY")
PROGRESS_PATH = os.environ.get("BENCH_PROGRESS")
_MAX_EXAMPLES = 5
_PROGRESS_EVERY_S = 1.0


@dataclass
class Tally:
    """What the responses said, counted since the users finished spawning."""

    rejected: int = 0
    failures: int = 0
    checks: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def reset(self) -> None:
        """Forget everything counted so far (the ramp is over)."""
        self.rejected = self.failures = 0
        self.checks.clear()
        self.latencies_ms.clear()
        self.examples.clear()
        self.started = time.monotonic()

    def fail(self, problem: str) -> None:
        """Count an answer that broke the contract, keeping the first few as examples."""
        self.failures += 1
        self.note(problem)

    def note(self, example: str) -> None:
        """Keep the first few failures and mismatches, to show what went wrong."""
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(example)

    def summary(self) -> dict[str, Any]:
        """Return the counts, exact latency percentiles and the latency histogram."""
        return {
            "responses": len(self.latencies_ms),
            "rejected": self.rejected,
            "failures": self.failures,
            "checks": dict(self.checks),
            "seconds": round(time.monotonic() - self.started, 3),
            "latency_ms": latency_summary(self.latencies_ms),
            "latency_histogram_ms": latency_histogram(self.latencies_ms),
            "examples": self.examples,
        }


TALLY = Tally()
_last_progress = [0.0]
_environment: list[Environment] = []


def _write(path: str | None, document: dict[str, Any]) -> None:
    if path:
        target = Path(path)
        partial = target.with_suffix(".part")
        partial.write_text(json.dumps(document))
        partial.replace(target)


def _on_spawned(user_count: int, **_: Any) -> None:
    del user_count
    TALLY.reset()


def _on_init(environment: Environment, **_: Any) -> None:
    _environment.append(environment)


def _on_request(response_time: float, **_: Any) -> None:
    TALLY.latencies_ms.append(response_time)
    now = time.monotonic()
    runner = _environment[0].runner if _environment else None
    if PROGRESS_PATH and now - _last_progress[0] >= _PROGRESS_EVERY_S and runner:
        _last_progress[0] = now
        total = runner.stats.total
        _write(
            PROGRESS_PATH,
            {
                "users": runner.user_count,
                "requests": total.num_requests,
                "failures": total.num_failures,
                "seconds": round(now - TALLY.started, 3),
                "responses": len(TALLY.latencies_ms),
            },
        )


def _on_stop(**_: Any) -> None:
    _write(TALLY_PATH, TALLY.summary())


def _listen(hook: Any, handler: Callable[..., None]) -> None:
    """Register `handler` on a Locust event hook (whose `add_listener` is untyped)."""
    hook.add_listener(handler)


_listen(events.spawning_complete, _on_spawned)
_listen(events.init, _on_init)
_listen(events.request, _on_request)
_listen(events.test_stop, _on_stop)
