"""The `lab` command: servers up and down, services, demos and the test suite.

Every failure a user can meet prints one line, `lab: <what happened and what to do>`,
and exits 1. An unexpected error (a bug in the lab) prints one line too, naming it;
`LAB_DEBUG=1` shows its traceback.
"""

import os
import sys

import click

from labs.cli.bench import bench
from labs.cli.cron import cron
from labs.cli.develop import test
from labs.cli.dlq import dlq
from labs.cli.report import report
from labs.cli.running import demo, experiment, serve, token
from labs.cli.servers import down, status, up
from labs.cli.verify import verify
from labs.cli.worker import worker
from labs.errors import LabError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """A runnable systems lab on real Redis, PostgreSQL and Kafka."""


for command in (
    up,
    status,
    down,
    serve,
    demo,
    experiment,
    bench,
    verify,
    report,
    token,
    test,
    worker,
    dlq,
    cron,
):
    cli.add_command(command)


def main() -> None:
    """Run the CLI, turning a `LabError` into one line on stderr and exit status 1."""
    try:
        cli.main(standalone_mode=False)
    except LabError as exc:
        click.echo(f"lab: {exc}", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        click.echo(f"lab: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("lab: interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        if os.environ.get("LAB_DEBUG") == "1":
            raise
        click.echo(
            f"lab: unexpected {type(exc).__name__}: {exc} (LAB_DEBUG=1 shows where)", err=True
        )
        sys.exit(1)
