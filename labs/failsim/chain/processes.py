"""The chain as real processes: one uvicorn per hop, on free loopback ports, stopped with SIGTERM.

`Chain` starts every hop of `TOPOLOGY` at once (the ports are chosen first, so each
hop is told its dependencies' URLs), waits until each answers `/healthz`, and on exit
stops them all; a hop that dies while starting fails the start, with its log.
"""

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import text

from labs.clients import sql_engine
from labs.servers.process import free_port
from labs.settings import ServerUrls

TOPOLOGY: Mapping[str, tuple[str, ...]] = {
    "gateway": ("orders", "catalog"),
    "orders": ("payments",),
    "payments": (),
    "catalog": (),
}
"""Each hop and the hops it calls: the chain, and `catalog` as the bulkhead's neighbour."""
SIDE_EFFECTS = frozenset({"payments"})
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
POOL_SIZE = 20


@dataclass(frozen=True)
class ChainUrls:
    """Where each hop listens, and the admin token they accept."""

    hops: dict[str, str]
    admin_token: str


class ChainStartError(RuntimeError):
    """A hop exited or never answered while the chain was starting."""


@asynccontextmanager
async def running_chain(
    urls: ServerUrls, admin_token: str, seed: int = 0
) -> AsyncIterator[ChainUrls]:
    """Run every hop of `TOPOLOGY` as a process until the block ends, on a schema of its own."""
    async with (
        _schema(urls.require("database_url")) as db_schema,
        _processes(urls, db_schema, admin_token, seed) as chain,
    ):
        yield chain


@asynccontextmanager
async def _schema(database_url: str) -> AsyncIterator[str]:
    """Create a PostgreSQL schema for the ledger; drop it (and the ledger) afterwards."""
    schema = f"failsim_{uuid.uuid4().hex[:10]}"
    admin = sql_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield schema
        finally:
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await admin.dispose()


@asynccontextmanager
async def _processes(
    urls: ServerUrls, db_schema: str, admin_token: str, seed: int
) -> AsyncIterator[ChainUrls]:
    ports = {name: free_port() for name in TOPOLOGY}
    base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    with tempfile.TemporaryDirectory(prefix="failsim-") as logs:
        processes: dict[str, asyncio.subprocess.Process] = {}
        try:
            for index, (name, calls) in enumerate(TOPOLOGY.items()):
                environment = {
                    "FAILSIM_NAME": name,
                    "FAILSIM_DOWNSTREAM": json.dumps({dep: base[dep] for dep in calls}),
                    "FAILSIM_SIDE_EFFECTS": str(name in SIDE_EFFECTS).lower(),
                    "FAILSIM_DB_SCHEMA": db_schema,
                    "FAILSIM_POOL_SIZE": str(POOL_SIZE),
                    "FAILSIM_SEED": str(seed * 10 + index),
                    "LAB_ADMIN_TOKEN": admin_token,
                    "DATABASE_URL": urls.require("database_url"),
                }
                log = Path(logs) / f"{name}.log"
                processes[name] = await _start(ports[name], environment, log)
            await asyncio.gather(
                *(_until_healthy(name, base[name], processes[name], logs) for name in TOPOLOGY)
            )
            yield ChainUrls(base, admin_token)
        finally:
            await asyncio.gather(*(_stop(process) for process in processes.values()))


async def _start(port: int, environment: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "labs.failsim.chain.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--timeout-keep-alive",
        "75",
    ]
    with log.open("wb") as sink:
        return await asyncio.create_subprocess_exec(
            *command,
            env=os.environ | environment,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=sink,
        )


async def _until_healthy(
    name: str, url: str, process: asyncio.subprocess.Process, logs: str
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                log = (Path(logs) / f"{name}.log").read_text()[-2_000:]
                raise ChainStartError(f"hop {name} exited with {process.returncode}: {log}")
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:  # noqa: PLR2004
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise ChainStartError(f"hop {name} did not answer /healthz within {START_TIMEOUT_S:g} s")


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
