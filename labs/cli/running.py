"""`lab serve`, `lab demo` and `lab token`: running the lab's services and demos."""

import asyncio
import os
import time
from pathlib import Path

import click
import uvicorn

from labs.admin_token import ENV_VAR as ADMIN_TOKEN_ENV
from labs.admin_token import admin_token
from labs.cli.registry import list_entries, pick
from labs.demos import DEMOS, DemoContext, DemoFailedError, DemoOutcome
from labs.errors import LabError
from labs.experiments import EXPERIMENTS, ExperimentContext, Size
from labs.paths import project_root, state_dir
from labs.servers import Fleet
from labs.services import SERVICES
from labs.settings import ServerUrls
from labs.web.logs import configure_logging


def _export_admin_token() -> None:
    """Put the admin token in the environment the service reads, saying where it came from."""
    token, generated = admin_token(state_dir())
    os.environ[ADMIN_TOKEN_ENV] = token
    if generated:
        click.echo(f"admin token (set {ADMIN_TOKEN_ENV} to choose one): {token}", err=True)


@click.command()
@click.argument("service", metavar="SERVICE")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Defaults to the service's own."
)
def serve(service: str, host: str, port: int | None) -> None:
    """Run SERVICE on the running servers (`lab serve --help` lists them)."""
    entry = pick(SERVICES, service, "service")
    urls = ServerUrls.discover()
    for field in entry.needs:
        urls.require(field)
    _export_admin_token()
    configure_logging(service)
    uvicorn.run(
        entry.factory,
        factory=True,
        host=host,
        port=port or entry.default_port,
        log_config=None,
        access_log=False,
    )


serve.help = (
    (serve.help or "")
    + "\n\nServices: "
    + ", ".join(f"{name} ({entry.summary})" for name, entry in sorted(SERVICES.items()))
)


async def _run_demo(name: str, context: DemoContext) -> DemoOutcome:
    try:
        return await DEMOS[name].load()(context)
    except DemoFailedError as exc:
        return DemoOutcome(proved=False, summary=str(exc))
    except Exception as exc:  # noqa: BLE001 - a crashed demo is reported, and the others still run
        return DemoOutcome(proved=False, summary=f"crashed: {type(exc).__name__}: {exc}")


@click.command()
@click.argument("name", required=False)
@click.option("--list", "list_only", is_flag=True, help="List the demos and exit.")
def demo(name: str | None, list_only: bool) -> None:  # noqa: FBT001
    """Bring the servers up and run one demo, or all of them: one line each, with numbers."""
    if list_only:
        list_entries(DEMOS)
        return
    if name is not None:
        pick(DEMOS, name, "demo")
    statuses = asyncio.run(Fleet(state_dir()).up())
    click.echo("servers: " + ", ".join(f"{s.record.name} ({s.detail})" for s in statuses), err=True)
    context = DemoContext(
        urls=ServerUrls.discover(),
        state_dir=state_dir(),
        progress=lambda message: click.echo(f"  .. {message}", err=True),
    )
    failed = []
    for demo_name in [name] if name else list(DEMOS):
        click.echo(f"-> {demo_name}: {DEMOS[demo_name].summary}", err=True)
        started = time.perf_counter()
        outcome = asyncio.run(_run_demo(demo_name, context))
        mark = "PROVED" if outcome.proved else "FAILED"
        click.echo(f"{mark} {demo_name}: {outcome.summary} [{time.perf_counter() - started:.1f}s]")
        if not outcome.proved:
            failed.append(demo_name)
    click.echo(
        "the servers are still running: `lab status` shows them, `lab down` stops them", err=True
    )
    if failed:
        raise LabError(f"{len(failed)} demo(s) did not prove their guarantee: {', '.join(failed)}")


@click.command()
def token() -> None:
    """Print the admin token that guards mutating admin endpoints."""
    click.echo(admin_token(state_dir())[0])


@click.command()
@click.argument("name", required=False)
@click.option("--full", is_flag=True, help="The full size the READMEs quote (default: quick).")
@click.option("--seed", type=int, default=7, show_default=True, help="Makes the run reproducible.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write results (default: the lab's own results/ folder).",
)
@click.option("--list", "list_only", is_flag=True, help="List the experiments and exit.")
def experiment(name: str | None, full: bool, seed: int, out: Path | None, list_only: bool) -> None:  # noqa: FBT001
    """Run an experiment on the real servers and write its results file and plot."""
    if list_only or name is None:
        list_entries(EXPERIMENTS)
        return
    entry = pick(EXPERIMENTS, name, "experiment")
    asyncio.run(Fleet(state_dir()).up())
    context = ExperimentContext(
        urls=ServerUrls.discover(),
        size=Size.FULL if full else Size.QUICK,
        seed=seed,
        results_dir=out or project_root() / entry.results,
        progress=lambda message: click.echo(f"  .. {message}", err=True),
    )
    click.echo(f"-> {name} ({context.size}, seed {seed}): {entry.summary}", err=True)
    started = time.perf_counter()
    try:
        summary = asyncio.run(entry.load()(context))
    except Exception as exc:  # noqa: BLE001 - reported in one line; the results are not written
        raise LabError(f"experiment {name} failed: {type(exc).__name__}: {exc}") from None
    elapsed = time.perf_counter() - started
    click.echo(f"{name}: {summary} [{elapsed:.1f}s, results in {context.results_dir}]")
