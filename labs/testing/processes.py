"""Processes a test starts together, waits for together and leaves none of behind.

`Children.start()` runs `python -m <module>` with the test's environment, its output
in a log file the failure message can show; `serve()` runs `lab serve <service>` on a
free port; `healthy()` waits for several at once (their start-up, seconds each on a
busy machine, overlaps); `stop_all()` (the fixture's teardown) sends SIGTERM, then
SIGKILL to whatever has not exited within 30 s.
"""

import asyncio
import subprocess
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

from labs.servers.process import free_port, wait_until_healthy

_STOP_GRACE_S = 30


@dataclass(frozen=True)
class Child:
    """A process a test started: its handle, its log file and, if it serves HTTP, its URL."""

    process: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    def log(self) -> str:
        """Return what the process wrote so far."""
        return self.log_path.read_text(errors="replace")


class Children:
    """Processes started by a test, started together and all gone when the test ends."""

    def __init__(self, directory: Path) -> None:
        """Keep logs in `directory`."""
        self._directory = directory
        self._started: list[Child] = []

    def start(self, *args: str, env: dict[str, str], port: int | None = None) -> Child:
        """Start `python -m <args>` (with `--port` when serving); do not wait for it."""
        command = [sys.executable, "-m", *args, *(["--port", str(port)] if port else [])]
        log_path = self._directory / f"child-{len(self._started)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - the lab's own modules
                command, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        child = Child(process, log_path, f"http://127.0.0.1:{port}" if port else "")
        self._started.append(child)
        return child

    def serve(self, service: str, env: dict[str, str]) -> Child:
        """Start `lab serve <service>` on a free port; do not wait for it."""
        return self.start("labs", "serve", service, env=env, port=free_port())

    async def healthy(self, *children: Child, timeout_s: float = 60) -> None:
        """Wait until every child serving HTTP answers `/healthz` with 200."""
        await asyncio.gather(*(self._until_healthy(child, timeout_s) for child in children))

    @staticmethod
    async def _until_healthy(child: Child, timeout_s: float) -> None:
        probe = partial(_healthz, child.url)
        await wait_until_healthy(child.url, child.process, child.log_path, probe, timeout_s)

    def stop_all(self) -> None:
        """SIGTERM whatever still runs, then SIGKILL what does not exit."""
        for child in self._started:
            if child.process.poll() is None:
                child.process.terminate()
        for child in self._started:
            try:
                child.process.wait(_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()


async def _healthz(url: str) -> str:
    async with httpx.AsyncClient(base_url=url) as client:
        return (await client.get("/healthz")).raise_for_status().text
