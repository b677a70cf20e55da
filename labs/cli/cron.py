"""`lab cron`: one cron runner process on the running servers.

It runs `scheduler.cron.runner.serve` (the same loop as `python -m scheduler.cron`) on
the Redis and PostgreSQL that `ServerUrls.discover()` finds, auditing each enqueued job;
start as many as you like, each tick is enqueued once. SIGTERM or SIGINT stops it. A
missing or unreachable server, or a malformed schedule, is one `LabError` line.
"""

import click

from labs.cli.worker import KEY_PREFIX, run_on_servers
from labs.errors import LabError
from scheduler.cron.runner import DEFAULT_MAX_LATENESS_S, serve
from scheduler.cron.schedule import Schedule, parse_spec


@click.command()
@click.option(
    "--schedule",
    "specs",
    multiple=True,
    required=True,
    metavar="SPEC",
    help="name|cron expression|job type[|payload JSON[|priority[|max attempts]]]; repeatable.",
)
@click.option("--queue", default="default", show_default=True, help="The queue to fill.")
@click.option(
    "--max-lateness-s",
    type=click.FloatRange(min=0),
    default=DEFAULT_MAX_LATENESS_S,
    show_default=True,
    help="Fire a missed tick only if it is at most this late.",
)
def cron(specs: tuple[str, ...], queue: str, max_lateness_s: float) -> None:
    """Enqueue scheduled jobs on the running Redis, once per tick, auditing to PostgreSQL."""
    schedules = _parse(specs)
    run_on_servers(
        "cron",
        lambda redis_url, database_url: serve(
            redis_url,
            KEY_PREFIX,
            queue,
            schedules,
            database_url=database_url,
            max_lateness_s=max_lateness_s,
        ),
    )


def _parse(specs: tuple[str, ...]) -> list[Schedule]:
    try:
        return [parse_spec(spec) for spec in specs]
    except ValueError as exc:
        raise LabError(str(exc)) from None
