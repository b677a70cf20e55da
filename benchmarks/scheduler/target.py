"""What `lab bench scheduler` runs: the systems, in order, and the two profiles.

Profiles are sized for the shared 2-core machines the lab runs on, where the
enqueuer, the worker processes and Redis share the two cores: 2 worker processes of
10 jobs in flight each for every system. The full profile runs three rounds, the
order of the systems rotated each round. The loaded pace is the same for every system
and below the slowest one's throughput, so every system is tested at equal load.
"""

from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.scheduler.ours import OurScheduler
from benchmarks.scheduler.runner import Profile, run_systems
from benchmarks.scheduler.saq_queue import Saq
from benchmarks.scheduler.streaq_queue import Streaq
from benchmarks.scheduler.system import System
from benchmarks.scheduler.taskiq_queue import Taskiq
from benchmarks.targets import BenchRequest
from labs.cli.registry import pick

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
    """The `lab bench` target for the scheduler (not a Locust target: no HTTP)."""

    name: str = "scheduler"
    options: frozenset[str] = frozenset({"jobs", "systems"})

    def run(self, request: BenchRequest) -> Path:
        """Run every chosen system on the same Redis; write the results file and its plot."""
        names = request.override("systems", ",".join(SYSTEMS)).split(",")
        chosen = [pick(SYSTEMS, name.strip(), "system") for name in names]
        profile = PROFILES["full" if request.full else "quick"]
        jobs = request.override("jobs", None)
        if jobs is not None:
            profile = replace(profile, jobs=jobs, warmup=min(profile.warmup, jobs // 10))
        request.progress(
            f"{profile.name}: {profile.jobs:,} jobs, {profile.workers} worker processes x "
            f"{profile.concurrency}, seed {request.seed}: {', '.join(s.name for s in chosen)}"
        )
        return run_systems(
            chosen,
            profile,
            seed=request.seed,
            urls=request.urls,
            out_dir=request.out_root / self.name,
            progress=request.progress,
            reproduce=f"lab bench scheduler{' --full' if request.full else ''} "
            f"--jobs {profile.jobs} --systems {','.join(s.name for s in chosen)} "
            f"--seed {request.seed}",
        )


TARGET = SchedulerTarget()
