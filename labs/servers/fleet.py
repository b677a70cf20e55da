"""Bringing the lab's servers up, reporting on them, and taking them down.

`up` reuses a healthy recorded server, uses a server given by URL in the environment
instead of starting one, and otherwise starts one on a free loopback port. If any
server fails, the ones this call started are stopped again: no half-started state.
"""

import asyncio
import os
import shutil
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from labs.errors import LabError, describe
from labs.servers import process
from labs.servers.kinds import CLUSTER_NODES, STANDALONE, ServerKind
from labs.servers.state import ServerRecord, StateFile
from labs.urls import redact

_CLUSTER_SLOTS = 16384


@dataclass(frozen=True)
class ServerStatus:
    """A server and what a health probe found just now."""

    record: ServerRecord
    healthy: bool
    detail: str


class Fleet:
    """The set of servers recorded under one state directory."""

    def __init__(self, directory: Path, environ: Mapping[str, str] | None = None) -> None:
        """Manage servers under `directory`; URLs set in `environ` replace embedded ones."""
        self.directory = directory
        self.state = StateFile(directory)
        self.environ = os.environ if environ is None else environ

    async def up(
        self,
        *,
        cluster: bool = False,
        ports: Mapping[str, int] | None = None,
        only: Collection[str] | None = None,
        timeout_s: float = 60.0,
    ) -> list[ServerStatus]:
        """Ensure every server (or those named in `only`) runs and is healthy."""
        kinds = tuple(
            kind
            for kind in STANDALONE + (CLUSTER_NODES if cluster else ())
            if only is None or kind.name in only
        )
        with self.state.locked():
            records = self.state.load()
            started: list[str] = []
            try:
                for kind in kinds:
                    recorded = records.get(kind.name)
                    port = (ports or {}).get(kind.name, 0)
                    records[kind.name] = await self._ensure(kind, recorded, port, timeout_s)
                    if records[kind.name].managed and records[kind.name] != recorded:
                        started.append(kind.name)
                    self.state.save(records)
                if cluster and not self.environ.get("REDIS_CLUSTER_URL"):
                    await _form_cluster([records[node.name].url for node in CLUSTER_NODES])
            except BaseException:
                self._stop_started(records, started)
                raise
        return [
            ServerStatus(records[kind.name], healthy=True, detail=records[kind.name].version)
            for kind in kinds
        ]

    async def _ensure(
        self, kind: ServerKind, recorded: ServerRecord | None, port: int, timeout_s: float
    ) -> ServerRecord:
        external = self.environ.get(kind.env_var)
        if external:
            return await _external(kind, external)
        if recorded and recorded.managed:
            if _alive(recorded) and await _answers(kind, recorded.url):
                return recorded
            _stop(kind, recorded)  # a hung server is stopped; a dead one is reaped
        return await self._start(kind, port, timeout_s)

    async def _start(self, kind: ServerKind, port: int, timeout_s: float) -> ServerRecord:
        port = port or process.free_port(kind.companion_port_offset)
        process.ensure_port_free(port, kind.name)
        workdir = self.directory / kind.name
        workdir.mkdir(parents=True, exist_ok=True)
        kind.prepare(workdir)
        log_path = self.directory / "logs" / f"{kind.name}.log"
        proc = process.spawn(kind.command(port, workdir), workdir, log_path, user=kind.run_as)
        record = ServerRecord(
            name=kind.name,
            url=kind.url(port),
            version="starting",
            managed=True,
            pid=proc.pid,
            started_at=process.process_start_time(proc.pid) or time.time(),
            log=str(log_path),
        )
        try:
            version = await process.wait_until_healthy(
                kind.name,
                proc,
                log_path,
                lambda: kind.ready(port),
                timeout_s,
                hint="; if its data is damaged, `lab down --purge` starts afresh",
            )
        except BaseException:
            _stop(kind, record)
            raise
        return replace(record, version=version)

    def _stop_started(self, records: dict[str, ServerRecord], started: list[str]) -> None:
        kinds = {kind.name: kind for kind in STANDALONE + CLUSTER_NODES}
        for name in started:
            _stop(kinds[name], records.pop(name))
        self.state.save(records)

    async def status(self) -> list[ServerStatus]:
        """Probe every known server (recorded or given by URL) and report its health."""
        records = self.state.load()
        for kind in STANDALONE:
            external = self.environ.get(kind.env_var)
            if external:
                records[kind.name] = ServerRecord(kind.name, external, "external", managed=False)
        kinds = {kind.name: kind for kind in STANDALONE + CLUSTER_NODES}
        return list(
            await asyncio.gather(
                *(_status(kinds[name], record) for name, record in records.items())
            )
        )

    def down(self, *, purge: bool = False) -> list[str]:
        """Stop every server the lab started; with `purge`, delete their data too."""
        kinds = {kind.name: kind for kind in STANDALONE + CLUSTER_NODES}
        with self.state.locked():
            records = self.state.load()
            stopped = []
            for name, record in records.items():
                if record.managed and _alive(record):
                    _stop(kinds[name], record)
                    stopped.append(name)
            self.state.save({})
            if purge:
                for kind in kinds.values():
                    shutil.rmtree(self.directory / kind.name, ignore_errors=True)
                shutil.rmtree(self.directory / "logs", ignore_errors=True)
        return stopped


async def _answers(kind: ServerKind, url: str) -> bool:
    try:
        await kind.probe(url)
    except Exception:  # noqa: BLE001 - any failure means it does not answer
        return False
    return True


def _alive(record: ServerRecord) -> bool:
    return (
        record.pid is not None
        and record.started_at is not None
        and process.is_alive(record.pid, record.started_at)
    )


def _stop(kind: ServerKind, record: ServerRecord) -> None:
    if record.pid is not None and record.started_at is not None:
        process.stop(record.pid, record.started_at, kind.stop_signal)


async def _external(kind: ServerKind, url: str) -> ServerRecord:
    try:
        version = await kind.probe(url)
    except Exception as exc:  # noqa: BLE001 - whatever the failure, the fix is the same
        raise LabError(
            f"{kind.env_var}={redact(url)} is set but that server does not answer "
            f"({describe(exc)}): start it, "
            f"or unset {kind.env_var} to use the embedded one"
        ) from None
    return ServerRecord(kind.name, url, version, managed=False)


async def _status(kind: ServerKind, record: ServerRecord) -> ServerStatus:
    if record.managed and not _alive(record):
        return ServerStatus(record, healthy=False, detail=f"down: process {record.pid} is gone")
    try:
        return ServerStatus(record, healthy=True, detail=await kind.probe(record.url))
    except Exception as exc:  # noqa: BLE001 - any failure is reported as unhealthy
        return ServerStatus(record, healthy=False, detail=f"unhealthy: {describe(exc)}")


async def _form_cluster(urls: list[str], timeout_s: float = 30.0) -> None:
    """Give each node a third of the slots, introduce them, and wait for `cluster_state:ok`."""
    clients = [aioredis.Redis.from_url(url) for url in urls]
    try:
        await _assign_slots_and_meet(clients, timeout_s)
    except RedisError as exc:
        raise LabError(f"forming the Redis cluster failed ({exc}): `lab down` and retry") from None
    finally:
        for client in clients:
            await client.aclose()


async def _assign_slots_and_meet(clients: list[aioredis.Redis], timeout_s: float) -> None:
    if await _all_ok(clients):
        return
    share = _CLUSTER_SLOTS // len(clients)
    for index, client in enumerate(clients):
        first = index * share
        last = _CLUSTER_SLOTS - 1 if index == len(clients) - 1 else first + share - 1
        await _command(client, "CLUSTER", "ADDSLOTSRANGE", first, last)
    first_host = clients[0].connection_pool.connection_kwargs
    for client in clients[1:]:
        await _command(client, "CLUSTER", "MEET", first_host["host"], first_host["port"])
    deadline = time.monotonic() + timeout_s
    while not await _all_ok(clients):
        if time.monotonic() > deadline:
            raise LabError(f"the Redis cluster did not reach cluster_state:ok in {timeout_s:.0f}s")
        await asyncio.sleep(0.1)


async def _all_ok(clients: list[aioredis.Redis]) -> bool:
    infos = [await _command(client, "CLUSTER", "INFO") for client in clients]
    return all(
        "cluster_state:ok" in (i.decode() if isinstance(i, bytes) else str(i)) for i in infos
    )


async def _command(client: aioredis.Redis, *args: str | int) -> Any:
    """Send a raw command (redis-py leaves `execute_command` untyped)."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]
