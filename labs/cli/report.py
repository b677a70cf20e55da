"""`lab report`: the static site and the feed, built from the results files alone.

It runs nothing and needs no server: the figures are the ones the results files hold
and the verdicts those of the latest `lab verify` (`--verify` picks another). Built
into the default folder, it also refreshes the committed feed
(`benchmarks/results/latest.json`) and the summary and claims tables in
benchmarks/README.md.
"""

from pathlib import Path

import click

from labs.cli.bench import benchmarks_home
from labs.errors import LabError
from labs.paths import project_root


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to build the site (default: build/report; only that one refreshes the feed).",
)
@click.option(
    "--verify",
    "verify_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The verify file to show (default: the newest in benchmarks/results/verify).",
)
def report(out: Path | None, verify_file: Path | None) -> None:
    """Build the report site and latest.json from the results files."""
    from benchmarks import report as tables  # noqa: PLC0415 - the benchmarks load only when asked for
    from benchmarks.site import build_site  # noqa: PLC0415
    from benchmarks.verify import VERIFY_DIR, render_table  # noqa: PLC0415

    verify_file = verify_file or tables.latest(VERIFY_DIR)
    home = benchmarks_home()
    target = out or project_root() / "build" / "report"
    feed = home / "results" / "latest.json" if out is None else None
    try:
        index = build_site(target, verify_file=verify_file, feed_path=feed)
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot build the report in {target}: {exc}") from None
    if feed is not None:
        readme = home / "README.md"
        tables.replace_block(readme, "bench:summary", tables.summary_table(home / "results"))
        if verify_file is not None:
            tables.replace_block(readme, "claims", render_table(tables.load(verify_file)))
    shown = verify_file.name if verify_file else "none: every claim shows as not verified"
    click.echo(f"report: {index} (verify file {shown}); feed: {feed or target / 'latest.json'}")
