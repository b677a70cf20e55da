"""`lab up`, `lab status` and `lab down`: the real servers' lifecycle."""

import asyncio
import json
import sys
from dataclasses import asdict

import click

from labs.paths import state_dir
from labs.servers import Fleet, ServerStatus
from labs.urls import redact


def _table(statuses: list[ServerStatus]) -> str:
    rows = [("SERVER", "HEALTH", "PID", "URL", "VERSION", "DETAIL")]
    rows += [
        (
            status.record.name,
            "healthy" if status.healthy else "DOWN",
            str(status.record.pid) if status.record.managed else "external",
            redact(status.record.url),
            status.record.version,
            status.detail,
        )
        for status in statuses
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


@click.command()
@click.option("--cluster", is_flag=True, help="Also start a 3-master Redis Cluster.")
@click.option("--redis-port", type=click.IntRange(0, 65535), default=0, help="0 picks a free port.")
@click.option(
    "--postgres-port", type=click.IntRange(0, 65535), default=0, help="0 picks a free port."
)
@click.option("--kafka-port", type=click.IntRange(0, 65535), default=0, help="0 picks a free port.")
def up(cluster: bool, redis_port: int, postgres_port: int, kafka_port: int) -> None:  # noqa: FBT001
    """Start Redis (Valkey), PostgreSQL and Kafka (Tansu), or reuse the running ones."""
    ports = {"redis": redis_port, "postgres": postgres_port, "kafka": kafka_port}
    statuses = asyncio.run(Fleet(state_dir()).up(cluster=cluster, ports=ports))
    click.echo(_table(statuses))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status(as_json: bool) -> None:  # noqa: FBT001
    """Show each server's URL, version, pid and health; exit 1 if any is down."""
    statuses = asyncio.run(Fleet(state_dir()).status())
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        **asdict(item.record),
                        "url": redact(item.record.url),
                        "healthy": item.healthy,
                        "detail": item.detail,
                    }
                    for item in statuses
                ],
                indent=2,
            )
        )
    elif statuses:
        click.echo(_table(statuses))
    else:
        click.echo("no lab servers are running: `lab up` starts them")
    if not all(item.healthy for item in statuses):
        sys.exit(1)


@click.command()
@click.option("--purge", is_flag=True, help="Also delete the servers' data and logs.")
def down(purge: bool) -> None:  # noqa: FBT001
    """Stop every server the lab started (servers given by URL are left alone)."""
    stopped = Fleet(state_dir()).down(purge=purge)
    if stopped:
        click.echo(f"stopped: {', '.join(stopped)}" + (" (data purged)" if purge else ""))
    else:
        click.echo(
            "nothing to stop: no lab servers are running" + (" (data purged)" if purge else "")
        )
