"""`lab bench <target>`: a service and its peers on the same servers, one results file.

Targets come from the registry in benchmarks/targets/ (HTTP targets run Locust
headless; `scheduler` enqueues and processes jobs directly). The command brings up the
servers the target needs, runs it with a live progress line, prints the results as
a table, and, when the results went to the default place, refreshes the target's
block in benchmarks/README.md.
"""

import asyncio
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click

from labs.cli.registry import list_entries, pick
from labs.errors import LabError
from labs.paths import state_dir
from labs.progress import progress_display
from labs.servers import Fleet
from labs.settings import ServerUrls


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into an interrupt, so the run stops every process it started."""
    del signum, frame
    raise KeyboardInterrupt


def benchmarks_home() -> Path:
    """Return the benchmarks package's folder (its README and default results)."""
    import benchmarks  # noqa: PLC0415 - the benchmarks load only when asked for

    return Path(benchmarks.__file__).parent


def _show_latest(target: str, root: Path, *, readme: bool) -> None:
    from benchmarks import report  # noqa: PLC0415

    latest = report.latest(root / target)
    if latest is None:
        raise LabError(f"no results for {target} in {root}: run `lab bench {target}` first")
    document = report.load(latest)
    click.echo(report.render_table(document), nl=False)
    if readme and report.update_readme(benchmarks_home() / "README.md", target, document):
        click.echo(f"benchmarks/README.md now shows {latest.name}", err=True)


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
@click.option("--jobs", type=click.IntRange(10), default=None, help="scheduler: jobs per system.")
@click.option("--systems", default=None, help="scheduler: comma-separated systems (default: all).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Results root (default: benchmarks/results; the README table follows only that one).",
)
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
    from benchmarks import report  # noqa: PLC0415 - Locust and the peers load only when benchmarking
    from benchmarks.targets import TARGETS, BenchRequest  # noqa: PLC0415

    if list_only or target is None:
        list_entries(TARGETS)
        return
    entry = pick(TARGETS, target, "target")
    root = out or benchmarks_home() / "results"
    if table:
        _show_latest(target, root, readme=out is None)
        return
    overrides: dict[str, Any] = {
        "users": users,
        "spawn_rate": spawn_rate,
        "duration": duration,
        "decisions": decisions,
        "jobs": jobs,
        "systems": systems,
    }
    runner = entry.load()
    foreign = {name for name, value in overrides.items() if value is not None} - runner.options
    if foreign:
        raise LabError(
            f"{_flags(foreign)} does not apply to {target}: it takes {_flags(runner.options)}"
        )
    statuses = asyncio.run(Fleet(state_dir()).up(only=entry.servers))
    click.echo("servers: " + ", ".join(f"{s.record.name} ({s.detail})" for s in statuses), err=True)
    click.echo(
        f"-> {target} ({'full' if full else 'quick'}, seed {seed}): {entry.summary}", err=True
    )
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    with progress_display() as progress:
        path = runner.run(
            BenchRequest(
                urls=ServerUrls.discover(),
                out_root=root,
                progress=progress,
                full=full,
                seed=seed,
                overrides=overrides,
            )
        )
    document = report.load(path)
    click.echo(report.render_table(document), nl=False)
    if out is None:
        report.update_readme(benchmarks_home() / "README.md", target, document)
    click.echo(f"results: {path} [{time.perf_counter() - started:.1f}s]")
    left = document["results"]["processes_left"]
    if left:
        raise LabError(f"processes outlived the benchmark: {', '.join(left)}")


def _flags(options: set[str] | frozenset[str]) -> str:
    return ", ".join(f"--{name.replace('_', '-')}" for name in sorted(options)) or "no overrides"
