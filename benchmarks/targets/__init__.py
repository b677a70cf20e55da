"""The targets `lab bench <target>` runs, by name: one module each, one line here.

A target is a module whose `TARGET` has `options` (the command-line overrides it
accepts) and `run(request) -> Path`, which runs the target and its peers on the
servers in `request.urls` and writes one results file under `request.out_root`.
Entries name the module by import path, so listing targets imports none of them
(Locust and the peers' libraries load only when a target runs). HTTP targets are
`LocustTarget`s (benchmarks/locust_target.py); `rate_limiter.py` is the model to copy.
`benchmarks/README.md` ("Adding a target") walks through it.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from labs.imports import LazyEntry
from labs.settings import ServerUrls

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchRequest:
    """One `lab bench` invocation: the servers, where results go, the size and overrides."""

    urls: ServerUrls
    out_root: Path
    progress: Progress
    full: bool = False
    seed: int = 7
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Profile fields set on the command line (users, duration, jobs, ...): None is unset."""

    def override(self, name: str, default: Any) -> Any:
        """Return the command line's `name` if it was given, else `default`."""
        value = self.overrides.get(name)
        return default if value is None else value


class BenchTarget(Protocol):
    """What a target module's `TARGET` provides."""

    @property
    def options(self) -> frozenset[str]:
        """The overrides (`BenchRequest.overrides` keys) this target accepts."""
        ...

    def run(self, request: BenchRequest) -> Path:
        """Run the target and its peers; return the results file written."""
        ...


@dataclass(frozen=True)
class TargetEntry(LazyEntry[BenchTarget]):
    """A `lab bench` target: its name, where it lives, what it measures, what it needs."""

    servers: frozenset[str]
    """The servers `lab bench` brings up before the target runs."""


TARGETS: dict[str, TargetEntry] = {
    entry.name: entry
    for entry in (
        TargetEntry(
            "rate-limiter",
            "benchmarks.targets.rate_limiter:TARGET",
            "POST /v1/check on the rate limiter (sliding_log) vs the `limits` library "
            "(moving window); in-process decisions vs a no-op EVALSHA",
            frozenset({"redis"}),
        ),
        TargetEntry(
            "rate-limiter-500",
            "benchmarks.targets.rate_limiter_500:TARGET",
            "the rate limiter and the `limits` app under 500 concurrent users: latency at "
            "that concurrency",
            frozenset({"redis"}),
        ),
        TargetEntry(
            "scheduler",
            "benchmarks.scheduler.target:TARGET",
            "no-op jobs: enqueue and process throughput, pickup latency idle and loaded; "
            "ours (audit on and off) vs SAQ, taskiq-redis, streaq",
            frozenset({"redis", "postgres"}),
        ),
    )
}
