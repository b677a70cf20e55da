"""`lab dlq`: the scheduler's dead-letter queue from a terminal: list, show, requeue, purge.

It works directly on the PostgreSQL (and, to requeue, the Redis) that
`ServerUrls.discover()` finds, through `scheduler.dlq`, the same code as the HTTP admin
routes, so no service has to run. `purge` deletes for good and asks for `--yes`. A
missing or unreachable server, or a bad selection, is one `LabError` line.
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.cli.worker import KEY_PREFIX
from labs.clients import redis_client, sql_engine
from labs.errors import LabError, first_line
from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from scheduler import dlq as dead_letters
from scheduler.jobs import HistoryEntry
from scheduler.queue import RedisQueue
from scheduler.store import ensure_schema

T = TypeVar("T")
_AGE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@click.group()
def dlq() -> None:
    """The scheduler's dead-letter queue (PostgreSQL): list, show, requeue, purge."""


@dlq.command("list")
@click.option("--type", "job_type", default=None, help="Only dead jobs of this type.")
@click.option(
    "--limit", type=click.IntRange(1, dead_letters.MAX_PAGE), default=20, show_default=True
)
@click.option("--cursor", default=None, help="Continue after a previous page.")
def list_dead(job_type: str | None, limit: int, cursor: str | None) -> None:
    """List dead jobs, newest first: id, type, attempts, time of death, error."""
    page = _run(
        _with_engine(
            lambda engine: dead_letters.list_dead(
                engine, job_type=job_type, limit=limit, cursor=cursor
            )
        )
    )
    for entry in page.entries:
        died = entry.died_at.astimezone(UTC).isoformat(timespec="seconds")
        click.echo(f"{entry.job_id}  {entry.type}  {entry.attempts}  {died}  {_brief(entry.error)}")
    if not page.entries:
        click.echo("no dead jobs", err=True)
    if page.next_cursor:
        same = (f"--type {job_type} " if job_type else "") + f"--limit {limit}"
        click.echo(f"more: lab dlq list {same} --cursor {page.next_cursor}", err=True)


@dlq.command()
@click.argument("job_id")
def show(job_id: str) -> None:
    """Show one dead job: its payload, attempts, last error and history."""
    detail = _run(_with_engine(lambda engine: dead_letters.inspect(engine, job_id)))
    if detail is None:
        raise LabError(f"no dead job {job_id!r}: `lab dlq list` shows them")
    click.echo(f"id: {detail.job_id}\ntype: {detail.type}\nattempts: {detail.attempts}")
    click.echo(f"died at: {detail.died_at.isoformat()}\npayload: {json.dumps(detail.payload)}")
    click.echo(f"error: {detail.error}\nhistory:")
    for event in detail.history:
        click.echo(f"  {_event(event)}")


@dlq.command()
@click.argument("ids", nargs=-1)
@click.option("--type", "job_type", default=None, help="Every dead job of this type.")
@click.option("--queue", default="default", show_default=True, help="The queue to put them in.")
def requeue(ids: tuple[str, ...], job_type: str | None, queue: str) -> None:
    """Put dead jobs (IDS, or all of --type) back in the queue with fresh attempts."""
    selection = _select(ids, job_type, None)
    moved = _run(_requeue(selection, queue))
    click.echo(f"requeued {moved}")


@dlq.command()
@click.argument("ids", nargs=-1)
@click.option("--type", "job_type", default=None, help="Every dead job of this type.")
@click.option(
    "--older-than", default=None, help="Died before: an age (30m, 12h, 7d) or an ISO 8601 time."
)
@click.option("--yes", is_flag=True, help="Confirm: purged jobs are gone for good.")
def purge(ids: tuple[str, ...], job_type: str | None, older_than: str | None, yes: bool) -> None:  # noqa: FBT001
    """Delete dead jobs (IDS, or by --type and/or --older-than) for good."""
    selection = _select(ids, job_type, _instant(older_than) if older_than else None)
    if not yes:
        raise LabError("purge deletes dead jobs for good: add --yes to confirm")
    purged = _run(_with_engine(lambda engine: dead_letters.purge(engine, selection)))
    click.echo(f"purged {purged}")


def _select(
    ids: tuple[str, ...], job_type: str | None, older_than: datetime | None
) -> dead_letters.Selection:
    try:
        return dead_letters.Selection(ids, job_type, older_than)
    except ValueError as exc:
        raise LabError(f"{exc}: see `lab dlq --help`") from None


def _instant(text: str) -> datetime:
    """Return the instant `text` names: an age before now, or an ISO 8601 time (UTC if naive)."""
    age = _AGE.match(text)
    if age:
        return datetime.now(UTC) - timedelta(**{_UNITS[age[2]]: int(age[1])})
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise LabError(
            f"--older-than {text!r}: give an age (7d, 12h) or an ISO 8601 time"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def _requeue(selection: dead_letters.Selection, queue_name: str) -> int:
    urls = ServerUrls.discover()
    redis = redis_client(urls.require("redis_url"))
    try:
        async with _engine(urls) as engine:
            queue = RedisQueue(redis, KeyBuilder(KEY_PREFIX), queue_name)
            return await dead_letters.requeue(engine, queue, selection)
    finally:
        await redis.aclose()


async def _with_engine(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    async with _engine(ServerUrls.discover()) as engine:
        return await work(engine)


@asynccontextmanager
async def _engine(urls: ServerUrls) -> AsyncIterator[AsyncEngine]:
    engine = sql_engine(urls.require("database_url"), pool_size=1, max_overflow=1)
    try:
        await ensure_schema(engine)
        yield engine
    finally:
        await engine.dispose()


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except dead_letters.InvalidCursorError as exc:
        raise LabError(f"--cursor: {exc}") from None
    except (RedisError, SQLAlchemyError, OSError) as exc:
        raise LabError(
            f"dlq cannot reach its servers ({type(exc).__name__}: {first_line(exc)}): "
            "run `lab up` or check REDIS_URL and DATABASE_URL"
        ) from None


def _brief(error: str, width: int = 80) -> str:
    line = error.strip().splitlines()[0] if error.strip() else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def _event(event: HistoryEntry) -> str:
    error = f"  {_brief(event.error)}" if event.error else ""
    return (
        f"{event.at.isoformat(timespec='seconds')}  {event.event}  attempt {event.attempt}{error}"
    )
