"""One `lab bench <target>` run: every app and peer on the same servers, one results file.

The order is fixed: the in-process measurement (no service running), then the
target's own app (a correctness pass, the peak run, and a run paced to a share of
that peak), then each peer (a correctness pass and the peak run), each app started
and stopped around its runs. Whatever happens, every process started is stopped and
the run's Redis keys are deleted; the results file records what is left (nothing).
"""

import asyncio
import importlib.metadata
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    LoadProfile,
    Processes,
    Progress,
    correctness_pass,
    delete_keys,
    run_locust,
    running_service,
)
from benchmarks.targets import App, Profile, Run, Target
from labs.clients import redis_client
from labs.results import save_results

PACKAGES = ("locust", "fastapi", "uvicorn", "redis", "hiredis", "limits", "pydantic")


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


async def _server_version(redis_url: str) -> str:
    client = redis_client(redis_url)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"redis {info.get('redis_version', '?')}"


def versions(redis_url: str, packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Return the versions that shape the figures: Python, the libraries, the Redis server."""
    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    found |= {name: _package_version(name) for name in packages}
    found["redis_server"] = asyncio.run(_server_version(redis_url))
    return found


def _locust_env(base: Mapping[str, str], run: Run, app: App, phase: str) -> dict[str, str]:
    return {
        **base,
        "BENCH_NAMESPACE": f"{run.namespace}-{app.name}-{phase}",
        "BENCH_RULE": run.rule,
        "BENCH_LIMIT": str(run.shape.limit),
        "BENCH_REQUESTS_PER_KEY": str(run.shape.requests_per_key),
        "BENCH_POOL": str(run.shape.pool),
        "BENCH_STRICT": "1" if app.strict else "0",
    }


def _exercise(
    *,
    target: Target,
    app: App,
    run: Run,
    load: LoadProfile,
    base_env: Mapping[str, str],
    processes: Processes,
    progress: Progress,
    results: dict[str, Any],
) -> None:
    """Start `app`, prove it exact on one key, run Locust at peak (and paced, for the target)."""
    app_dir = run.raw_dir / app.name
    env = {**base_env, **app.environment(run)}
    with running_service(app.name, app.command, env, app_dir / "service.log", processes) as service:
        url = service.url
        progress(f"{app.name} up at {url}: correctness pass")
        results["correctness"][app.name] = asyncio.run(
            correctness_pass(
                url,
                run.rule,
                f"{run.namespace}-{app.name}-correctness",
                target.correctness_requests,
                run.shape.limit,
            )
        )
        phases = [("peak", load)]
        for phase, profile in phases:
            label = app.name if phase == "peak" else f"{app.name}@{phase}"
            result = run_locust(
                label,
                target.locustfile,
                url,
                profile,
                raw_dir=app_dir / phase,
                env=_locust_env(base_env, run, app, phase),
                processes=processes,
                progress=progress,
                watch={"service": service.pid},
            )
            result["raw"] = str((app_dir / phase).relative_to(run.raw_dir.parent.parent))
            results["runs"][label] = result
            progress(
                f"{label}: {result['rps']} req/s, p99 {result['latency_ms']['p99']} ms, "
                f"{result['failures']} failures, {result['decisions']['mismatches']} mismatches"
            )
            if app is target.app and phase == "peak":
                pace = max(1.0, round(result["rps"] * target.half_peak_share, 1))
                phases.append(("half-peak", replace(load, target_rps=pace)))


def run_target(
    target: Target,
    profile: Profile,
    *,
    seed: int,
    redis_url: str,
    out_root: Path,
    progress: Progress,
) -> Path:
    """Run `target` and its peers; write and return `<out_root>/<target>/<stamp>.json`."""
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results_dir = out_root / target.name
    run = Run(
        stamp=stamp,
        namespace=f"bench-{stamp.lower()}",
        raw_dir=results_dir / "raw" / stamp,
        redis_url=redis_url,
        seed=seed,
        shape=target.shape,
        rule=target.rule,
    )
    run.raw_dir.mkdir(parents=True, exist_ok=True)
    load = LoadProfile(profile.users, profile.spawn_rate, profile.duration_s, seed)
    base_env = {**os.environ, "REDIS_URL": redis_url}
    processes = Processes()
    results: dict[str, Any] = {"correctness": {}, "runs": {}}
    load_before = os.getloadavg()
    try:
        if target.inprocess is not None:
            progress("in-process decisions (no HTTP) and the no-op EVALSHA ceiling")
            results["decisions"] = target.inprocess(run, profile, progress)
        for app in (target.app, *target.peers):
            _exercise(
                target=target,
                app=app,
                run=run,
                load=load,
                base_env=base_env,
                processes=processes,
                progress=progress,
                results=results,
            )
    finally:
        patterns = [app.key_pattern(run) for app in (target.app, *target.peers)]
        asyncio.run(delete_keys(redis_url, *patterns, f"{run.namespace}-inproc:*"))
    results["processes_left"] = processes.alive()
    results["load_average_1m"] = {"before": load_before[0], "after": os.getloadavg()[0]}
    results["ratios"], results["goals"] = target.judge(results)
    results["seconds"] = round(time.monotonic() - started, 1)
    return save_results(
        results_dir,
        stamp,
        results,
        target=target.name,
        profile={**asdict(profile), "seed": seed},
        workload={**asdict(target.shape), "rule": target.rule},
        apps={app.name: app.summary for app in (target.app, *target.peers)},
        versions=versions(redis_url),
        raw=str(run.raw_dir.relative_to(results_dir)),
        reproduce=(
            f"lab bench {target.name} --users {profile.users} --spawn-rate {profile.spawn_rate} "
            f"--duration {profile.duration_s} --decisions {profile.decision_ops} --seed {seed}"
        ),
    )
