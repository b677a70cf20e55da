"""What `lab bench scheduler` runs: the systems, in order, and the two profiles.

Profiles are sized for the shared 2-core machines the lab runs on, where the
enqueuer, the worker processes and Redis share the two cores: 2 worker processes of
10 jobs in flight each for every system. The full profile runs three rounds, the
order of the systems rotated each round. The loaded pace is the same for every system
and below the slowest one's throughput, so every system is tested at equal load.
"""

from dataclasses import dataclass

from benchmarks.scheduler.ours import OurScheduler
from benchmarks.scheduler.runner import Profile
from benchmarks.scheduler.saq_queue import Saq
from benchmarks.scheduler.streaq_queue import Streaq
from benchmarks.scheduler.system import System
from benchmarks.scheduler.taskiq_queue import Taskiq

SYSTEMS: dict[str, System] = {
    system.name: system
    for system in (OurScheduler(audit=True), OurScheduler(audit=False), Saq(), Taskiq(), Streaq())
}
PROFILES = {
    "quick": Profile(
        "quick", jobs=2_000, warmup=200, idle_jobs=30, loaded_rate=200, loaded_seconds=3
    ),
    "full": Profile(
        "full",
        jobs=10_000,
        warmup=500,
        idle_jobs=100,
        loaded_rate=250,
        loaded_seconds=10,
        rounds=3,
    ),
}


@dataclass(frozen=True)
class SchedulerTarget:
    """The `lab bench` entry for the scheduler (not a Locust target)."""

    name: str = "scheduler"
    summary: str = (
        "no-op jobs: enqueue and process throughput, pickup latency idle and loaded; "
        "ours (audit on and off) vs SAQ, taskiq-redis, streaq"
    )
    servers: frozenset[str] = frozenset({"redis", "postgres"})


TARGET = SchedulerTarget()
