"""Shared test configuration: the lab's plugin is loaded from pyproject's addopts.

Fixtures here serve tests of more than one folder (integration and e2e), and those of
a service whose tests span several modules (mypy allows one `conftest` module).
"""

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from idempotency.provider.admin import ProviderAdmin
from idempotency.settings import IdempotencySettings
from idempotency.testing import ApiFactory, RunningApi, running_api
from labs.clients import sql_engine
from labs.clock import Clock
from labs.keys import KeyBuilder
from labs.servers.process import free_port, wait_until_healthy
from labs.settings import ServerUrls
from labs.testing.processes import Children
from labs.testing.pytest_plugin import SERVER_URL_VARS, unique
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


PROVIDER_TOKEN = "provider-test-token"
API_TOKEN = "api-test-token"


@pytest.fixture(scope="session")
def payment_provider_process(
    lab_urls: ServerUrls, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProviderAdmin]:
    """One `lab serve payment-provider` process for the session, its ledger in its own schema."""
    directory = tmp_path_factory.mktemp("provider")
    port, schema = free_port(), unique("prov_")
    env = {key: value for key, value in os.environ.items() if key not in SERVER_URL_VARS} | {
        "DATABASE_URL": lab_urls.require("database_url"),
        "LAB_ADMIN_TOKEN": PROVIDER_TOKEN,
        "LAB_STATE_DIR": str(directory),
        "PAYMENT_PROVIDER_DB_SCHEMA": schema,
    }
    provider = ProviderAdmin(f"http://127.0.0.1:{port}", PROVIDER_TOKEN)
    command = [sys.executable, "-m", "labs", "serve", "payment-provider", "--port", str(port)]
    log_path = directory / "provider.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        asyncio.run(wait_until_healthy("payment provider", process, log_path, provider.health, 60))
        yield provider
    finally:
        process.terminate()
        process.wait(30)
        asyncio.run(_drop_schema(lab_urls, schema))


async def _drop_schema(urls: ServerUrls, schema: str) -> None:
    engine = sql_engine(urls.require("database_url"), pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await engine.dispose()


@pytest.fixture
async def spare_schema(lab_urls: ServerUrls) -> AsyncIterator[str]:
    """A schema name no other test uses, for a process to create; dropped afterwards."""
    schema = unique("t_")
    try:
        yield schema
    finally:
        await _drop_schema(lab_urls, schema)


@pytest.fixture
async def provider(payment_provider_process: ProviderAdmin) -> ProviderAdmin:
    """The session's payment provider, with an empty ledger and no faults."""
    await payment_provider_process.reset()
    return payment_provider_process


@pytest.fixture
def api_settings(provider: ProviderAdmin, db_schema: str, keys: KeyBuilder) -> IdempotencySettings:
    """Settings for a payments API on the test's schema, Redis prefix and topic, no children."""
    return IdempotencySettings(
        provider_url=provider.url,
        chargers=0,
        db_schema=db_schema,
        key_prefix=keys.prefix,
        topic=f"{keys.prefix}-payments",
        admin_token=SecretStr(API_TOKEN),
    )


@pytest.fixture
def payments_api(
    lab_urls: ServerUrls, api_settings: IdempotencySettings, redis: Redis
) -> ApiFactory:
    """Start the payments API in this process (`idempotency.testing`); settings as keywords."""
    del redis  # requested so that the API's Redis keys are deleted afterwards

    def start(
        clock: Clock | None = None, **overrides: Any
    ) -> AbstractAsyncContextManager[RunningApi]:
        return running_api(api_settings.model_copy(update=overrides), lab_urls, clock)

    return start


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    """Start processes for the test; whatever still runs is stopped afterwards."""
    started = Children(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def idempotency_env(
    lab_urls: ServerUrls, api_settings: IdempotencySettings, redis: Redis, tmp_path: Path
) -> dict[str, str]:
    """The environment of API and charger processes on the test's servers, schema and prefix."""
    del redis  # requested so that the processes' Redis keys are deleted afterwards
    inherited = {key: value for key, value in os.environ.items() if key not in SERVER_URL_VARS}
    return inherited | {
        "REDIS_URL": lab_urls.require("redis_url"),
        "DATABASE_URL": lab_urls.require("database_url"),
        "KAFKA_BOOTSTRAP_SERVERS": lab_urls.require("kafka_bootstrap_servers"),
        "LAB_ADMIN_TOKEN": API_TOKEN,
        "LAB_STATE_DIR": str(tmp_path),
        "IDEMPOTENCY_PROVIDER_URL": api_settings.provider_url or "",
        "IDEMPOTENCY_CHARGERS": "0",
        "IDEMPOTENCY_DB_SCHEMA": api_settings.db_schema,
        "IDEMPOTENCY_KEY_PREFIX": api_settings.key_prefix,
        "IDEMPOTENCY_TOPIC": api_settings.topic,
    }
