"""`lab worker`: one scheduler worker process on the running servers.

It runs `scheduler.worker.serve` (the same loop as `python -m scheduler.worker`) on
the Redis and PostgreSQL that `ServerUrls.discover()` finds, with the PostgreSQL audit
trail and dead-letter table; SIGTERM or SIGINT drains it. A missing or unreachable
server is one `LabError` line, not a traceback.
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import click
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from labs.errors import LabError, first_line
from labs.settings import ServerUrls
from scheduler.worker import serve

KEY_PREFIX = "sched"
"""The scheduler's Redis key prefix, as `python -m scheduler.worker` uses by default."""
GRACE_S = 10.0


@click.command()
@click.option("--concurrency", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--lease-ms", type=click.IntRange(min=100), default=5_000, show_default=True)
@click.option("--queue", default="default", show_default=True, help="The queue to work.")
@click.option("--burst", is_flag=True, help="Exit once nothing is due or running.")
def worker(concurrency: int, lease_ms: int, queue: str, burst: bool) -> None:  # noqa: FBT001
    """Run a scheduler worker on the running Redis, auditing to PostgreSQL."""
    run_on_servers(
        "worker",
        lambda redis_url, database_url: serve(
            redis_url,
            KEY_PREFIX,
            queue,
            concurrency=concurrency,
            lease_ms=lease_ms,
            grace_s=GRACE_S,
            database_url=database_url,
            burst=burst,
        ),
    )


def run_on_servers(name: str, process: Callable[[str, str], Coroutine[Any, Any, None]]) -> None:
    """Run a scheduler process on the Redis and PostgreSQL `ServerUrls.discover()` finds.

    A missing or unreachable server is one `LabError` line naming the process.
    """
    urls = ServerUrls.discover()
    redis_url = urls.require("redis_url")
    database_url = urls.require("database_url")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(process(redis_url, database_url))
    except (RedisError, SQLAlchemyError, OSError) as exc:
        raise LabError(
            f"{name} cannot reach its servers ({type(exc).__name__}: {first_line(exc)}): "
            "run `lab up` or check REDIS_URL and DATABASE_URL"
        ) from None
