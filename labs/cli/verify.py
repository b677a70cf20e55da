"""`lab verify`: every claim the lab can measure, measured now, judged against its threshold.

It reports; it is not a test: a claim measured and missed is printed NOT MET with its
figure and the command still exits 0. A command that crashed is different: its claims
were not checked, so `lab verify` exits 1 after writing what it could judge.
"""

import asyncio
import time
from pathlib import Path

import click

from labs.cli.bench import benchmarks_home
from labs.errors import LabError
from labs.paths import state_dir
from labs.progress import progress_display
from labs.servers import Fleet
from labs.settings import ServerUrls


@click.command()
@click.option("--full", is_flag=True, help="Run each command at its full size (default: quick).")
@click.option(
    "--recorded",
    is_flag=True,
    help="Run nothing: judge the results files already in place (what the READMEs quote).",
)
@click.option(
    "--claim",
    "claim_ids",
    multiple=True,
    help="Only this claim (repeatable; `--list` names them).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the verify file and the runs go (default: benchmarks/results/verify).",
)
@click.option("--list", "list_only", is_flag=True, help="List the claims and their measures.")
def verify(
    full: bool,  # noqa: FBT001
    recorded: bool,  # noqa: FBT001
    claim_ids: tuple[str, ...],
    out: Path | None,
    list_only: bool,  # noqa: FBT001
) -> None:
    """Measure the portfolio's claims (benchmarks/claims.toml) and print each verdict."""
    from benchmarks import report  # noqa: PLC0415 - the benchmarks load only when asked for
    from benchmarks.claims import load_claims, select  # noqa: PLC0415
    from benchmarks.verify import (  # noqa: PLC0415
        VERIFY_DIR,
        Mode,
        commands_to_run,
        failed_runs,
        render_table,
        run_verify,
    )

    if full and recorded:
        raise LabError("--full runs the commands and --recorded runs none: choose one")
    claims = select(load_claims(), claim_ids)
    if list_only:
        for claim in claims:
            texts = sorted({m.command.text for m in claim.measures if m.active and m.command})
            click.echo(f"{claim.id:30} {', '.join(texts) or 'not measurable yet'}")
        return
    mode = Mode.RECORDED if recorded else Mode.FULL if full else Mode.QUICK
    urls = None
    if mode is not Mode.RECORDED:
        asyncio.run(Fleet(state_dir()).up())
        urls = ServerUrls.discover()
        to_run = ", ".join(command.text for command in commands_to_run(claims))
        click.echo(f"-> lab verify ({mode}): {to_run or 'nothing to run'}", err=True)
    started = time.perf_counter()
    with progress_display() as progress:
        path = run_verify(claims, mode, progress=progress, verify_dir=out or VERIFY_DIR, urls=urls)
    document = report.load(path)
    table = render_table(document)
    click.echo(table, nl=False)
    if out is None and not claim_ids:
        report.replace_block(benchmarks_home() / "README.md", "claims", table)
    click.echo(f"verify: {path} [{time.perf_counter() - started:.1f}s]")
    failed = failed_runs(document)
    if failed:
        names = "; ".join(
            f"`{run['command']}` (exit {run['exit_code']}, log {run['log']})" for run in failed
        )
        raise LabError(f"{len(failed)} command(s) failed, their claims are unchecked: {names}")
