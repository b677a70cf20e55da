"""The chaos experiment's workload and records: plans by size, the job mix, what a run keeps.

A `Plan` sizes a run (quick for tests and the demo, full for the README); `job_specs`
draws the chaos phase's jobs from `MIX` with the run's seeded `random.Random`, and
`dlq_specs` makes the DLQ phase's always-failing jobs with padded payloads. A
`Timeline` is what the run records as it goes; a `Report` is the judged outcome.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from labs.experiments import Size
from scheduler.experiments import ledger
from scheduler.experiments.checker import Check, Execution, Kill, MemorySample, Spread

NAME = "chaos"
QUEUE = "chaos"
MIX = {"noop": 0.60, "sleep": 0.30, "flaky": 0.07, "fail": 0.03}
"""Share of each job type in the chaos phase."""
SLEEP_MS = (50, 500)
FLAKY_P = 0.3
RETRY_BASE_MS = 20
RETRY_CAP_MS = 200
DLQ_PAYLOAD_BYTES = 4_096


@dataclass(frozen=True)
class Plan:
    """The size of a run."""

    name: str
    jobs: int
    produce_s: float
    workers: int
    concurrency: int
    kills: int
    dlq_jobs: int
    dlq_produce_s: float
    lease_ms: int = 2_000
    grace_s: float = 5.0
    settle_timeout_s: float = 120.0

    def describe(self) -> str:
        """Return the plan in a few words, for captions and summaries."""
        dlq = f"; DLQ phase {self.dlq_jobs:,} always-failing jobs" if self.dlq_jobs else ""
        return (
            f"{self.jobs:,} jobs over {self.produce_s:g} s or more, {self.workers} workers x "
            f"{self.concurrency}, {self.kills} SIGKILLs + a rolling restart, lease "
            f"{self.lease_ms} ms{dlq}"
        )


PLANS = {
    Size.QUICK: Plan(
        "quick",
        jobs=4_000,
        produce_s=20,
        workers=3,
        concurrency=16,
        kills=3,
        dlq_jobs=1_000,
        dlq_produce_s=10,
    ),
    Size.FULL: Plan(
        "full",
        jobs=100_000,
        produce_s=300,
        workers=4,
        concurrency=16,
        kills=10,
        dlq_jobs=5_000,
        dlq_produce_s=40,
        settle_timeout_s=600,
    ),
}


@dataclass(frozen=True)
class JobSpec:
    """A job to enqueue."""

    id: str
    type: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Restart:
    """One step of the rolling restart: the old worker drained in `drain_s`."""

    at: float
    stopped: str
    started: str
    drain_s: float


@dataclass
class Timeline:
    """What happened when, recorded as the run goes."""

    executions: list[Execution] = field(default_factory=list)
    working: set[int] = field(default_factory=set)
    """Process ids of the workers that have run a job (started up and serving)."""
    kills: list[Kill] = field(default_factory=list)
    restarts: list[Restart] = field(default_factory=list)
    chaos_memory: list[MemorySample] = field(default_factory=list)
    dlq_memory: list[MemorySample] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    """The outcome of a run: the checks, the redelivery times and the timeline."""

    plan: Plan
    started_at: float
    checks: list[Check]
    redelivery: Spread
    redelivery_times: list[float]
    timeline: Timeline
    seconds: float

    @property
    def passed(self) -> bool:
        """Return whether every check passed."""
        return all(check.passed for check in self.checks)


def record(timeline: Timeline, executions: Sequence[Execution]) -> None:
    """Add drained ledger entries to the timeline."""
    timeline.executions += executions
    timeline.working |= {each.pid for each in executions}


def job_specs(plan: Plan, run_id: str, ledger_key: str, rng: random.Random) -> list[JobSpec]:
    """Return the chaos phase's jobs, types drawn by `MIX`."""
    types = rng.choices(list(MIX), weights=list(MIX.values()), k=plan.jobs)
    specs = []
    for index, job_type in enumerate(types):
        payload: dict[str, Any] = {ledger.LEDGER: ledger_key}
        if job_type == "sleep":
            payload["ms"] = rng.randint(*SLEEP_MS)
        elif job_type == "flaky":
            payload["p"] = FLAKY_P
        specs.append(JobSpec(f"{run_id}-{index:07d}", job_type, payload))
    return specs


def dlq_specs(plan: Plan, run_id: str, ledger_key: str) -> list[JobSpec]:
    """Return the DLQ phase's jobs: all fail for good, each with a padded payload."""
    payload = {ledger.LEDGER: ledger_key, "pad": "x" * DLQ_PAYLOAD_BYTES}
    return [JobSpec(f"{run_id}-dlq-{index:06d}", "fail", payload) for index in range(plan.dlq_jobs)]
