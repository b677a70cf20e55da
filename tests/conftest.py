"""Shared test configuration: the lab's plugin is loaded from pyproject's addopts.

Fixtures here serve tests of more than one folder (integration and e2e).
"""

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from scheduler.domain import Job
from scheduler.store import AuditEvent, JournalEntry, write_entries

Bury = Callable[[AsyncEngine, Job, str, int], Awaitable[None]]


@pytest.fixture
def bury() -> Bury:
    """Return a function that writes a dead job to the DLQ as the journal drain does."""

    async def write(engine: AsyncEngine, job: Job, error: str, at_ms: int) -> None:
        fields = {
            "err": error,
            "p": json.dumps(job.payload),
            "pr": str(job.priority),
            "m": str(job.max_attempts),
        }
        dead = JournalEntry(f"{at_ms}-0", AuditEvent.DEAD, job.id, job.type, job.attempts, fields)
        async with engine.begin() as conn:
            await write_entries(conn, [dead])

    return write


StartWorker = Callable[..., Awaitable[asyncio.subprocess.Process]]


@pytest.fixture
def start_worker(lab_urls: ServerUrls, keys: KeyBuilder) -> StartWorker:
    """Return a function that starts `python -m scheduler.worker` on the test's keys.

    Its arguments are added to the command line; `stderr` (default: discarded) is passed
    to the process.
    """

    async def start(*args: str, stderr: int = subprocess.DEVNULL) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "scheduler.worker",
            "--redis-url",
            lab_urls.require("redis_url"),
            "--prefix",
            keys.prefix,
            *args,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )

    return start
