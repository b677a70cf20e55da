"""An HTTP target for `lab bench`: a service and its peers under Locust, one results file.

A `LocustTarget` names its own app and the peers it is compared with, a locustfile
that checks every answer (benchmarks/locustfiles/), two profiles (`quick` for a look,
`full` for the figures a README quotes), and a judge that turns the run into ratios
and goal verdicts; optionally a correctness pass before each app's load, a run paced
to a share of the app's measured peak, and an in-process measurement with no HTTP.

A run's order is fixed: the in-process measurement (no service running), then the
target's own app (correctness pass, peak run, paced run), then each peer (correctness
pass, peak run), each app started and stopped around its runs, all on the same
servers, one after the other. Whatever happens, every process started is stopped and
the run's Redis keys are deleted; the results file records what is left (nothing).
"""

import asyncio
import os
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    LoadProfile,
    Processes,
    Progress,
    delete_keys,
    run_locust,
    running_service,
)
from benchmarks.ratios import peer_ratios
from benchmarks.targets import BenchRequest
from labs.results import save_results
from labs.settings import ServerUrls

PACKAGES = ("locust", "fastapi", "uvicorn", "redis", "hiredis", "pydantic")
"""Packages every HTTP run records the versions of (a target adds its peers')."""
OPTIONS = frozenset({"users", "spawn_rate", "duration", "decisions"})


@dataclass(frozen=True)
class Profile:
    """How big a run is; every field can be overridden on the command line."""

    name: str
    users: int
    spawn_rate: float
    duration_s: int
    decision_ops: int = 0
    """In-process calls per round and mode (targets with an in-process measurement)."""
    decision_rounds: int = 0
    concurrency: int = 64


@dataclass(frozen=True)
class Run:
    """One invocation: where its files go, the servers, and the names that keep its keys apart."""

    stamp: str
    namespace: str
    raw_dir: Path
    urls: ServerUrls
    seed: int

    @property
    def redis_url(self) -> str:
        """The Redis every app of the run shares."""
        return self.urls.require("redis_url")


@dataclass(frozen=True)
class App:
    """A server put under load: the target's own service or a peer."""

    name: str
    summary: str
    command: Callable[[int], list[str]]
    """The command that serves the app on the given port."""
    environment: Callable[[Run], dict[str, str]]
    key_pattern: Callable[[Run], str]
    """Every Redis key this app writes in a run (deleted afterwards)."""
    locust_env: Mapping[str, str] = field(default_factory=dict)
    """What the locustfile reads for this app alone (how strictly to check its answers)."""


Judge = Callable[[dict[str, Any]], tuple[dict[str, Any], list[dict[str, Any]]]]
InProcess = Callable[[Run, Profile, Progress], dict[str, Any]]
Correctness = Callable[[Run, App, str], Coroutine[Any, Any, dict[str, Any]]]


@dataclass(frozen=True)
class LocustTarget:
    """What `lab bench <name>` runs for an HTTP service."""

    name: str
    locustfile: Path
    app: App
    peers: tuple[App, ...]
    profiles: dict[str, Profile]
    judge: Judge
    workload: Mapping[str, Any] = field(default_factory=dict)
    """The workload's parameters, recorded in the results file."""
    locust_env: Mapping[str, str] = field(default_factory=dict)
    """What the locustfile reads for every app (the workload)."""
    correctness: Correctness | None = None
    """A pass before each app's load; its result goes to `results.correctness[app]`."""
    paced_share: float | None = None
    """Also run the target's own app paced to this share of its measured peak."""
    inprocess: InProcess | None = None
    packages: tuple[str, ...] = ()
    """The peers' packages, whose versions the results file records."""
    options: frozenset[str] = OPTIONS

    def profile(self, request: BenchRequest) -> Profile:
        """Return the request's profile (quick or full) with its overrides applied."""
        profile = self.profiles["full" if request.full else "quick"]
        users = request.override("users", profile.users)
        return replace(
            profile,
            users=users,
            spawn_rate=request.override("spawn_rate", min(profile.spawn_rate, users)),
            duration_s=request.override("duration", profile.duration_s),
            decision_ops=request.override("decisions", profile.decision_ops),
        )

    def run(self, request: BenchRequest) -> Path:
        """Run the target and its peers; write `<out_root>/<name>/<stamp>.json`."""
        return run_target(self, self.profile(request), request)

    @property
    def apps(self) -> tuple[App, ...]:
        """The target's own app, then its peers."""
        return (self.app, *self.peers)


def _locust_env(target: LocustTarget, run: Run, app: App, phase: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": run.redis_url,
        "BENCH_NAMESPACE": f"{run.namespace}-{app.name}-{phase}",
        **target.locust_env,
        **app.locust_env,
    }


def _exercise(
    target: LocustTarget,
    app: App,
    *,
    run: Run,
    load: LoadProfile,
    processes: Processes,
    progress: Progress,
    results: dict[str, Any],
) -> None:
    """Start `app`, run its correctness pass, Locust at peak (and paced, for the target's own)."""
    app_dir = run.raw_dir / app.name
    env = {**os.environ, "REDIS_URL": run.redis_url, **app.environment(run)}
    with running_service(app.name, app.command, env, app_dir / "service.log", processes) as service:
        if target.correctness is not None:
            progress(f"{app.name} up at {service.url}: correctness pass")
            results["correctness"][app.name] = asyncio.run(
                target.correctness(run, app, service.url)
            )
        phases = [("peak", load)]
        for phase, profile in phases:
            label = app.name if phase == "peak" else f"{app.name}@{phase}"
            result = run_locust(
                label,
                target.locustfile,
                service.url,
                profile,
                raw_dir=app_dir / phase,
                env=_locust_env(target, run, app, phase),
                processes=processes,
                progress=progress,
                watch={"service": service.pid},
            )
            result["raw"] = str((app_dir / phase).relative_to(run.raw_dir.parent.parent))
            results["runs"][label] = result
            progress(
                f"{label}: {result['rps']} req/s, p99 {result['latency_ms']['p99']} ms, "
                f"{result['failures']} failures, {result['checks'].get('mismatches', 0)} mismatches"
            )
            if app is target.app and phase == "peak" and target.paced_share is not None:
                pace = max(1.0, round(result["rps"] * target.paced_share, 1))
                phases.append(("half-peak", replace(load, target_rps=pace)))


def run_target(target: LocustTarget, profile: Profile, request: BenchRequest) -> Path:
    """Run `target` and its peers at `profile`; write and return the results file."""
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results_dir = request.out_root / target.name
    run = Run(
        stamp=stamp,
        namespace=f"bench-{stamp.lower()}",
        raw_dir=results_dir / "raw" / stamp,
        urls=request.urls,
        seed=request.seed,
    )
    run.raw_dir.mkdir(parents=True, exist_ok=True)
    load = LoadProfile(profile.users, profile.spawn_rate, profile.duration_s, request.seed)
    processes = Processes()
    results: dict[str, Any] = {"correctness": {}, "runs": {}}
    load_before = os.getloadavg()
    try:
        if target.inprocess is not None:
            request.progress("in-process measurement (no HTTP)")
            results["decisions"] = target.inprocess(run, profile, request.progress)
        for app in target.apps:
            _exercise(
                target,
                app,
                run=run,
                load=load,
                processes=processes,
                progress=request.progress,
                results=results,
            )
    finally:
        patterns = [app.key_pattern(run) for app in target.apps]
        asyncio.run(delete_keys(run.redis_url, *patterns, f"{run.namespace}-inproc:*"))
    results["processes_left"] = processes.alive()
    results["load_average_1m"] = {"before": load_before[0], "after": os.getloadavg()[0]}
    results["peer_ratios"] = peer_ratios(
        target.app.name, [peer.name for peer in target.peers], results["runs"]
    )
    results["ratios"], results["goals"] = target.judge(results)
    results["seconds"] = round(time.monotonic() - started, 1)
    return save_results(
        results_dir,
        stamp,
        results,
        servers=request.urls,
        packages=(*PACKAGES, *target.packages),
        target=target.name,
        profile={**asdict(profile), "seed": request.seed},
        workload=dict(target.workload),
        apps={app.name: app.summary for app in target.apps},
        raw=str(run.raw_dir.relative_to(results_dir)),
        reproduce=_reproduce(target, profile, request.seed),
    )


def _reproduce(target: LocustTarget, profile: Profile, seed: int) -> str:
    decisions = f" --decisions {profile.decision_ops}" if target.inprocess else ""
    return (
        f"lab bench {target.name} --users {profile.users} --spawn-rate {profile.spawn_rate} "
        f"--duration {profile.duration_s}{decisions} --seed {seed}"
    )
