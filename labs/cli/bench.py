"""`lab bench <target>`: a service and its peers on the same servers, one results file.

The HTTP targets run Locust headless; `scheduler` enqueues and processes jobs directly.
"""

import asyncio
import signal
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType

import click

from labs.cli.registry import list_entries, pick
from labs.errors import LabError
from labs.paths import state_dir
from labs.servers import Fleet
from labs.settings import ServerUrls


def _progress(message: str) -> None:
    click.echo(f"  .. {message}", err=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into an interrupt, so the run stops every process it started."""
    del signum, frame
    raise KeyboardInterrupt


@click.command()
@click.argument("target", required=False)
@click.option("--full", is_flag=True, help="The full profile the README quotes (default: quick).")
@click.option("--users", type=click.IntRange(1), default=None, help="Locust users.")
@click.option(
    "--spawn-rate", type=click.FloatRange(min=0.1), default=None, help="Users per second."
)
@click.option("--duration", type=click.IntRange(1), default=None, help="Seconds per Locust run.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seeds the workload.")
@click.option(
    "--decisions", type=click.IntRange(1), default=None, help="In-process calls per round and mode."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Results root (default: benchmarks/results; the README table follows only that one).",
)
@click.option("--jobs", type=click.IntRange(10), default=None, help="scheduler: jobs per system.")
@click.option("--systems", default=None, help="scheduler: comma-separated systems (default: all).")
@click.option("--table", is_flag=True, help="Print the latest results as a table; run nothing.")
@click.option("--list", "list_only", is_flag=True, help="List the targets and exit.")
def bench(  # noqa: PLR0917 - click passes one argument per option
    target: str | None,
    full: bool,  # noqa: FBT001
    users: int | None,
    spawn_rate: float | None,
    duration: int | None,
    seed: int,
    decisions: int | None,
    jobs: int | None,
    systems: str | None,
    out: Path | None,
    table: bool,  # noqa: FBT001
    list_only: bool,  # noqa: FBT001
) -> None:
    """Benchmark TARGET and its peers on the running servers; write the results JSON."""
    import benchmarks  # noqa: PLC0415 - Locust and the peers load only when benchmarking
    from benchmarks import report  # noqa: PLC0415
    from benchmarks.runner import run_target  # noqa: PLC0415
    from benchmarks.scheduler.target import TARGET as SCHEDULER  # noqa: PLC0415
    from benchmarks.scheduler.target import SchedulerTarget  # noqa: PLC0415
    from benchmarks.targets import TARGETS, Target  # noqa: PLC0415

    registry: dict[str, Target | SchedulerTarget] = {**TARGETS, SCHEDULER.name: SCHEDULER}
    if list_only or target is None:
        list_entries(registry)
        return
    entry = pick(registry, target, "target")
    home = Path(benchmarks.__file__).parent
    root = out or home / "results"
    if table:
        latest = report.latest(root / target)
        if latest is None:
            raise LabError(f"no results for {target} in {root}: run `lab bench {target}` first")
        document = report.load(latest)
        click.echo(report.render_table(document), nl=False)
        if out is None and report.update_readme(home / "README.md", target, document):
            click.echo(f"benchmarks/README.md now shows {latest.name}", err=True)
        return
    if entry is SCHEDULER:
        _bench_scheduler(
            full=full, seed=seed, jobs=jobs, systems=systems, root=root, readme=out is None
        )
        return
    if not isinstance(entry, Target):
        raise LabError(f"{target} is not a Locust target")
    profile = entry.profiles["full" if full else "quick"]
    profile = replace(
        profile,
        users=users or profile.users,
        spawn_rate=spawn_rate or users or profile.spawn_rate,
        duration_s=duration or profile.duration_s,
        decision_ops=decisions or profile.decision_ops,
    )
    statuses = asyncio.run(Fleet(state_dir()).up(only=entry.servers))
    click.echo("servers: " + ", ".join(f"{s.record.name} ({s.detail})" for s in statuses), err=True)
    redis_url = ServerUrls.discover().require("redis_url")
    click.echo(
        f"-> {target} ({profile.name}: {profile.users} users, {profile.duration_s} s per run, "
        f"seed {seed}): {entry.summary}",
        err=True,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    path = run_target(
        entry, profile, seed=seed, redis_url=redis_url, out_root=root, progress=_progress
    )
    document = report.load(path)
    click.echo(report.render_table(document), nl=False)
    if out is None:
        report.update_readme(home / "README.md", target, document)
    elapsed = time.perf_counter() - started
    click.echo(f"results: {path} [{elapsed:.1f}s]")
    left = document["results"]["processes_left"]
    if left:
        raise LabError(f"processes outlived the benchmark: {', '.join(left)}")


def _bench_scheduler(
    *, full: bool, seed: int, jobs: int | None, systems: str | None, root: Path, readme: bool
) -> None:
    """Run `lab bench scheduler`: every chosen system on the same Redis, one results file."""
    from benchmarks import report  # noqa: PLC0415
    from benchmarks.scheduler.runner import run_systems  # noqa: PLC0415
    from benchmarks.scheduler.target import PROFILES, SYSTEMS, TARGET  # noqa: PLC0415

    names = systems.split(",") if systems else list(SYSTEMS)
    chosen = [pick(SYSTEMS, name.strip(), "system") for name in names]
    profile = PROFILES["full" if full else "quick"]
    if jobs is not None:
        profile = replace(profile, jobs=jobs, warmup=min(profile.warmup, jobs // 10))
    statuses = asyncio.run(Fleet(state_dir()).up(only=TARGET.servers))
    click.echo("servers: " + ", ".join(f"{s.record.name} ({s.detail})" for s in statuses), err=True)
    urls = ServerUrls.discover()
    click.echo(
        f"-> scheduler ({profile.name}: {profile.jobs:,} jobs, {profile.workers} worker processes "
        f"x {profile.concurrency}, seed {seed}): {', '.join(s.name for s in chosen)}",
        err=True,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    path = run_systems(
        chosen,
        profile,
        seed=seed,
        redis_url=urls.require("redis_url"),
        database_url=urls.require("database_url"),
        out_dir=root / TARGET.name,
        progress=_progress,
        reproduce=f"lab bench scheduler{' --full' if full else ''} --jobs {profile.jobs} "
        f"--systems {','.join(s.name for s in chosen)} --seed {seed}",
    )
    document = report.load(path)
    click.echo(report.render_table(document), nl=False)
    if readme:
        report.update_readme(root.parent / "README.md", TARGET.name, document)
    elapsed = time.perf_counter() - started
    click.echo(f"results: {path} and {path.with_suffix('.png').name} [{elapsed:.1f}s]")
    left = document["results"]["processes_left"]
    if left:
        raise LabError(f"processes outlived the benchmark: {', '.join(left)}")
