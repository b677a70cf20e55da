"""Starting, watching and stopping server processes without leaving any behind.

A server runs in its own session (process group), so stopping it also reaches any
children it forked (PostgreSQL's backends). A pid from the state file is trusted only
when the process with that pid started at the recorded time, so a reused pid is never
signalled.
"""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import psutil

from labs.errors import LabError, describe

_START_TIME_TOLERANCE_S = 1.0
# Servers this process started, kept so they are reaped (waited for) when they stop.
_children: dict[int, subprocess.Popen[bytes]] = {}
_LOG_TAIL_LINES = 40


_MAX_PORT = 65535


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(companion_offset: int | None = None) -> int:
    """Return a free loopback port; with an offset, `port + offset` is free as well.

    A Redis Cluster node also listens on its port + 10000 for the cluster bus.
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if companion_offset is None:
            return port
        companion = port + companion_offset
        if companion <= _MAX_PORT and _is_free(companion):
            return port
    raise LabError("found no free pair of loopback ports: stop some servers and retry")


def ensure_port_free(port: int, server: str) -> None:
    """Raise a `LabError` naming the port and the fix when `port` is already bound."""
    if not _is_free(port):
        raise LabError(
            f"port {port} for {server} is taken by another process: "
            f"free it or choose another with `lab up --{server}-port N`"
        )


def spawn(
    command: list[str],
    workdir: Path,
    log_path: Path,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `command` in `workdir`, in its own session, its output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        child = subprocess.Popen(  # noqa: S603 - the command is one of the lab's own binaries
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=workdir,
            user=user,
            env=None if env is None else dict(env),
        )
    _children[child.pid] = child
    return child


def process_start_time(pid: int) -> float | None:
    """Return when `pid` started (epoch seconds), or None when no such process runs."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except psutil.Error:
        return None


def is_alive(pid: int, started_at: float) -> bool:
    """Return True when `pid` runs and is the process that started at `started_at`."""
    actual = process_start_time(pid)
    return actual is not None and abs(actual - started_at) < _START_TIME_TOLERANCE_S


def stop(pid: int, started_at: float, sig: signal.Signals, grace_s: float = 10.0) -> None:
    """Stop the process group led by `pid` with `sig`, then SIGKILL after `grace_s`."""
    _reap(pid)
    if not is_alive(pid, started_at):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and is_alive(pid, started_at):
        _reap(pid)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    child = _children.pop(pid, None)
    if child is not None:
        child.wait(timeout=grace_s)


def _reap(pid: int) -> None:
    """Collect `pid`'s exit status when this process started it, so it leaves no zombie."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def log_tail(log_path: Path, lines: int = _LOG_TAIL_LINES) -> list[str]:
    """Return the last non-empty lines of a server log."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def last_error_line(log_path: Path, context: int = 2) -> str:
    """Return the log's last failure report on one line, with the lines that follow it."""
    tail = log_tail(log_path)
    markers = ("FATAL", "PANIC", "ERROR", "panicked", "error", "Error")
    for index in range(len(tail) - 1, -1, -1):
        marker = next((m for m in markers if m in tail[index]), None)
        if marker:
            first = tail[index][tail[index].index(marker) :]
            following = [_without_timestamp(line) for line in tail[index + 1 : index + 1 + context]]
            return " | ".join(part.strip(" *") for part in (first, *following))
    return tail[-1].strip() if tail else "(empty log)"


def _without_timestamp(line: str) -> str:
    """Drop a PostgreSQL-style `2026-01-01 00:00:00.000 UTC [pid] ` prefix."""
    _, bracket, rest = line.partition("] ")
    return rest if bracket and line[:4].isdigit() else line


async def wait_until_healthy(
    name: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
    probe: Callable[[], Awaitable[str]],
    timeout_s: float,
    *,
    hint: str = "",
) -> str:
    """Poll `probe` until it answers; fail fast with the log's reason if the process exits."""
    deadline = time.monotonic() + timeout_s
    last_problem = "no answer yet"
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise LabError(
                f"{name} exited at start (code {code}): {last_error_line(log_path)} "
                f"[log: {log_path}]{hint}"
            )
        try:
            return await probe()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last_problem = describe(exc)
        await asyncio.sleep(0.1)
    raise LabError(
        f"{name} did not become healthy within {timeout_s:.0f}s ({last_problem}) [log: {log_path}]"
    )
