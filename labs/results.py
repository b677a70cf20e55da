"""Results files: every number a README quotes comes from one of these.

`save_results` writes `<name>.json` with the measured payload and the context needed
to judge it: the machine (CPU model, cores, memory, OS), the lab's commit, the time,
and, given the servers, a `versions` block (Python, the packages named, and each
server's version as the server itself reports it: one real round trip each, so a
figure is never credited to a server that was not the one measured). Machines like the
shared 2-core ones here drift from run to run, which is why experiments compare peers
within one run and report ratios; the machine record says where they ran.
"""

import asyncio
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from labs.errors import first_line
from labs.paths import project_root, state_dir
from labs.servers.health import probe_kafka, probe_postgres, probe_redis
from labs.servers.state import StateFile
from labs.settings import ServerUrls


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, read-only
            cwd=project_root(),
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            cwd=project_root(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return result.stdout.strip() + ("-dirty" if dirty else "")


def machine() -> dict[str, Any]:
    """Describe the machine a measurement ran on."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def package_versions(packages: Sequence[str]) -> dict[str, str | None]:
    """Return each installed package's version (None when it is not installed)."""
    found: dict[str, str | None] = {}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


async def _probe(probe: Callable[[str], Awaitable[str]], url: str | None) -> str | None:
    if url is None:
        return None
    try:
        return await probe(url)
    except Exception as exc:  # noqa: BLE001 - a server that does not answer is recorded as such
        return f"unreachable ({first_line(exc)})"


async def _server_versions(urls: ServerUrls) -> dict[str, str | None]:
    redis, postgres, kafka = await asyncio.gather(
        _probe(probe_redis, urls.redis_url),
        _probe(probe_postgres, urls.database_url),
        _probe(probe_kafka, urls.kafka_bootstrap_servers),
    )
    recorded = StateFile(state_dir()).load().get("kafka")
    if recorded is not None and recorded.url == urls.kafka_bootstrap_servers and kafka:
        kafka = recorded.version  # the Kafka protocol does not name the broker's software
    return {"redis_server": redis, "postgresql_server": postgres, "broker": kafka}


def server_versions(urls: ServerUrls) -> dict[str, str | None]:
    """Ask each configured server for its version (None: not configured).

    Callable from synchronous code and from inside a running event loop alike (the
    probes run on a loop of their own, in a worker thread).
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _server_versions(urls)).result()


def versions(servers: ServerUrls | None, packages: Sequence[str] = ()) -> dict[str, str | None]:
    """Return the versions block: Python, the `packages` named, and the servers' own."""
    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    found |= package_versions(packages)
    if servers is not None:
        found |= server_versions(servers)
    return found


def save_results(
    directory: Path,
    name: str,
    payload: dict[str, Any],
    *,
    servers: ServerUrls | None = None,
    packages: Sequence[str] = (),
    **context: Any,
) -> Path:
    """Write `<directory>/<name>.json`: payload, machine, commit, time, versions, `context`.

    The versions are Python's, the `packages`' and, given `servers`, the servers' own.
    """
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "name": name,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": machine(),
        "versions": versions(servers, packages),
        **context,
        "results": payload,
    }
    path = directory / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path
