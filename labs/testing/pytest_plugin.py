"""The lab's pytest plugin: real servers for the session, isolation for every test.

Session fixtures start Redis (Valkey), PostgreSQL and Kafka (Tansu) through the same
`Fleet` as `lab up`, in a temporary state directory, and stop them at the end; a URL
set in the environment (`REDIS_URL`, ...) is used instead, as in compose. Each test
gets its own Redis key prefix (its keys deleted afterwards), its own PostgreSQL schema
(dropped afterwards) and unique Kafka topic names. Tests are marked by their folder
(unit, integration, e2e); `real_kafka` tests run only when `LAB_REAL_KAFKA=1` says the
broker is Apache Kafka.
"""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.clients import redis_client, sql_engine
from labs.keys import KeyBuilder
from labs.servers import Fleet
from labs.servers.process import free_port
from labs.settings import ServerUrls

_FOLDER_MARKERS = ("unit", "integration", "e2e")
REAL_KAFKA_ENV = "LAB_REAL_KAFKA"


def pytest_configure(config: pytest.Config) -> None:
    """Keep Hypothesis' caches in the user's cache directory, out of the source tree."""
    del config
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    os.environ.setdefault(
        "HYPOTHESIS_STORAGE_DIRECTORY", str(cache_home / "systems-lab" / "hypothesis")
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by its folder; skip `real_kafka` tests on the embedded broker."""
    del config
    real_kafka = os.environ.get(REAL_KAFKA_ENV) == "1"
    skip = pytest.mark.skip(reason=f"needs Apache Kafka (Tansu lacks it): set {REAL_KAFKA_ENV}=1")
    for item in items:
        parts = Path(str(item.path)).parts
        for marker in _FOLDER_MARKERS:
            if marker in parts:
                item.add_marker(marker)
        if "real_kafka" in item.keywords and not real_kafka:
            item.add_marker(skip)


def unique(prefix: str) -> str:
    """Return `prefix` with a short random suffix, for names no other test uses."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def lab_state_dir() -> Iterator[Path]:
    """A state directory of the test session's own, apart from any `lab up`.

    Not pytest's tmp_path: that is private to the user (0700), and as root PostgreSQL
    runs as `nobody`, who must be able to reach its data directory.
    """
    directory = _world_traversable_tempdir("lab-test-")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def lab_fleet(lab_state_dir: Path) -> Iterator[Fleet]:
    """The test session's servers, started once and stopped (with their data) at the end."""
    fleet = Fleet(lab_state_dir)
    try:
        asyncio.run(fleet.up())
        yield fleet
    finally:
        fleet.down(purge=True)


@pytest.fixture(scope="session")
def lab_urls(lab_fleet: Fleet) -> ServerUrls:
    """Where the session's servers listen."""
    return ServerUrls.discover(lab_fleet.directory)


@pytest.fixture(scope="session")
def redis_cluster_url(lab_fleet: Fleet) -> str:
    """A 3-master Redis Cluster, started the first time a test asks for it."""
    asyncio.run(lab_fleet.up(cluster=True))
    return ServerUrls.discover(lab_fleet.directory).require("redis_cluster_url")


class DisposableRedis:
    """A Redis server of one test's own, which the test may SIGKILL and restart."""

    def __init__(self, directory: Path) -> None:
        """Manage the server under `directory` (server URLs in the environment are ignored)."""
        self.directory = directory
        self._fleet = Fleet(directory, environ={})
        self.url = ""
        self.port = 0

    async def start(self) -> None:
        """Start the server, on the same port as before if it ran already."""
        ports = {"redis": self.port} if self.port else {}
        (status,) = await self._fleet.up(only={"redis"}, ports=ports)
        self.url = status.record.url
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        record = self._fleet.state.load()["redis"]
        assert record.pid is not None  # noqa: S101 - the fleet started it
        os.kill(record.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stop the server and delete its data."""
        self._fleet.down(purge=True)


@pytest.fixture
def disposable_redis() -> Iterator[DisposableRedis]:
    """A Redis of the test's own: kill it, restart it on the same port, nobody else notices."""
    server = DisposableRedis(_world_traversable_tempdir("lab-redis-"))
    asyncio.run(server.start())
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def keys() -> KeyBuilder:
    """A key builder with a prefix no other test uses."""
    return KeyBuilder(unique("t"))


@pytest.fixture
async def redis(lab_urls: ServerUrls, keys: KeyBuilder) -> AsyncIterator[Redis]:
    """A client of the session's Redis; the test's keys are deleted afterwards."""
    client = redis_client(lab_urls.require("redis_url"))
    try:
        yield client
    finally:
        async for batch in _scan_batches(client, f"{keys.prefix}:*"):
            await client.unlink(*batch)
        await client.aclose()


async def _scan_batches(client: Redis, pattern: str) -> AsyncIterator[list[bytes]]:
    batch: list[bytes] = []
    async for key in client.scan_iter(match=pattern, count=500):
        batch.append(key)
        if len(batch) >= 500:  # noqa: PLR2004 - a batch size
            yield batch
            batch = []
    if batch:
        yield batch


@pytest.fixture
async def db_schema(lab_urls: ServerUrls) -> AsyncIterator[str]:
    """A PostgreSQL schema of the test's own, dropped with its tables afterwards."""
    schema = unique("t_")
    admin = sql_engine(lab_urls.require("database_url"), pool_size=1, max_overflow=0)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
async def db(lab_urls: ServerUrls, db_schema: str) -> AsyncIterator[AsyncEngine]:
    """An engine whose connections work inside the test's own schema."""
    engine = sql_engine(
        lab_urls.require("database_url"),
        connect_args={"server_settings": {"search_path": db_schema}},
    )
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def public_db(lab_urls: ServerUrls) -> AsyncIterator[AsyncEngine]:
    """An engine on the default schema, where processes started by a test write."""
    engine = sql_engine(lab_urls.require("database_url"), pool_size=1, max_overflow=0)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def topic_name() -> Callable[[str], str]:
    """Make Kafka topic names that no other test uses."""

    def make(prefix: str = "t") -> str:
        return unique(f"{prefix}-")

    return make


SERVER_URL_VARS = ("REDIS_URL", "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "REDIS_CLUSTER_URL")
LabRunner = Callable[..., subprocess.CompletedProcess[str]]


def _world_traversable_tempdir(prefix: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    directory.chmod(0o755)
    return directory


def _cli_env(directory: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in SERVER_URL_VARS}
    return env | {"LAB_STATE_DIR": str(directory)} | extra


@pytest.fixture
def cli_state_dir() -> Iterator[Path]:
    """A fresh state directory for `lab` commands; whatever they started is stopped after."""
    directory = _world_traversable_tempdir("lab-cli-")
    try:
        yield directory
    finally:
        subprocess.run(
            [sys.executable, "-m", "labs", "down"],
            env=_cli_env(directory),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def lab(cli_state_dir: Path) -> LabRunner:
    """Run `lab <args>` as a separate process; environment additions as keyword arguments.

    Server URLs from the test's environment are removed, so each call sees only what
    the test passes.
    """

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - the lab's own command
            [sys.executable, "-m", "labs", *args],
            env=_cli_env(cli_state_dir, **env),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    return run


@dataclass
class ServedProcess:
    """A `lab serve` process: its base URL; once stopped, its exit code and stderr log."""

    url: str
    returncode: int | None = None
    log: str = ""


LabService = Callable[..., AbstractContextManager[ServedProcess]]


@pytest.fixture
def lab_service(cli_state_dir: Path) -> LabService:
    """Run `lab serve <service>` as a separate process until the block ends (then SIGTERM).

    Environment additions as keyword arguments, as for `lab`; the block starts once the
    service answers `/healthz` (whatever its status), and a process that exits first
    fails the test.
    """

    @contextmanager
    def serve(service: str, **env: str) -> Iterator[ServedProcess]:
        port = free_port()
        command = [sys.executable, "-m", "labs", "serve", service]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        process = subprocess.Popen(  # noqa: S603 - the lab's own command
            command, env=_cli_env(cli_state_dir, **env), stderr=subprocess.PIPE, text=True
        )
        served = ServedProcess(f"http://127.0.0.1:{port}")
        try:
            _wait_for_an_answer(f"{served.url}/healthz", process)
            yield served
        finally:
            process.send_signal(signal.SIGTERM)
            _, served.log = process.communicate(timeout=30)
            served.returncode = process.returncode

    return serve


def _wait_for_an_answer(url: str, process: subprocess.Popen[str]) -> None:
    """Wait for the service to answer (it is starting up), failing fast if it exits."""
    for _ in range(300):
        if process.poll() is not None:
            pytest.fail(f"the service exited with {process.returncode}")
        try:
            httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
        else:
            return
    pytest.fail("the service never answered")
