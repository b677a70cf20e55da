"""The benchmark harness: real processes, Locust headless, parsed results, nothing left.

A service under test runs as a real subprocess (`python -m labs serve <service>` or
uvicorn for a peer's app factory) on a free loopback port, in its own session so that
stopping it reaches every child. The harness waits for its `/healthz`, runs Locust
headless as another subprocess with a fixed profile and a seed, reports progress
while it runs, parses Locust's `_stats.csv`, its per-second history and the
locustfile's own tally (exact latencies, the target's checks; see
benchmarks/locustfiles/recording.py), then stops everything and checks that no
process it started is still alive.
"""

import asyncio
import csv
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from labs.clients import redis_client
from labs.errors import LabError
from labs.paths import project_root
from labs.servers import process
from labs.servers.process import free_port, last_error_line, wait_until_healthy

Progress = Callable[[str], None]
_HEALTH_TIMEOUT_S = 60.0
_STOP_GRACE_S = 10.0
_LOCUST_GRACE_S = 60.0
_PROGRESS_EVERY_S = 3.0
_LOCUST_OK_CODES = (0, 1)  # 1: some requests failed, which the results report


@dataclass(frozen=True)
class LoadProfile:
    """How hard Locust pushes: users, spawn rate, duration, seed, and an optional pace."""

    users: int
    spawn_rate: float
    duration_s: int
    seed: int
    target_rps: float | None = None


@dataclass
class Processes:
    """Every process the harness started, so that none outlives the run."""

    started: list[tuple[int, float, str]] = field(default_factory=list)

    def add(self, child: subprocess.Popen[bytes], label: str) -> None:
        """Remember `child` (pid and start time, so a reused pid is never mistaken)."""
        started = process.process_start_time(child.pid)
        if started is not None:
            self.started.append((child.pid, started, label))

    def alive(self) -> list[str]:
        """Return the processes still running, as `label (pid)`."""
        return [
            f"{label} ({pid})"
            for pid, started, label in self.started
            if process.is_alive(pid, started)
        ]


def spawn(
    command: Sequence[str], env: Mapping[str, str], log_path: Path, processes: Processes, label: str
) -> subprocess.Popen[bytes]:
    """Start `command` in its own session, its output in `log_path`, remembered in `processes`."""
    child = process.spawn(list(command), project_root(), log_path, env=env)
    processes.add(child, label)
    return child


def stop(child: subprocess.Popen[bytes], grace_s: float = _STOP_GRACE_S) -> None:
    """SIGTERM the child's process group, SIGKILL it after `grace_s`, and reap the child."""
    started = process.process_start_time(child.pid) or 0.0  # gone already: only reaped
    process.stop(child.pid, started, signal.SIGTERM, grace_s)


def _wait_healthy(url: str, child: subprocess.Popen[bytes], log_path: Path, label: str) -> None:
    async def healthy() -> str:
        async with httpx.AsyncClient(timeout=2.0) as client:
            response = await client.get(f"{url}/healthz")
        return str(response.raise_for_status().status_code)

    asyncio.run(wait_until_healthy(label, child, log_path, healthy, _HEALTH_TIMEOUT_S))


@dataclass(frozen=True)
class Service:
    """A service under test: where it answers, and its process."""

    url: str
    pid: int


@contextmanager
def running_service(
    label: str,
    command: Callable[[int], list[str]],
    env: Mapping[str, str],
    log_path: Path,
    processes: Processes,
) -> Iterator[Service]:
    """Start `command(port)` on a free port, yield it once healthy, then stop it."""
    port = free_port()
    child = spawn(command(port), env, log_path, processes, label)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, child, log_path, label)
        yield Service(url, child.pid)
    finally:
        stop(child)


def _cpu_seconds(pid: int) -> float | None:
    """Return the CPU time `pid` and its children have used (None once it is gone)."""
    try:
        leader = psutil.Process(pid)
        family = [leader, *leader.children(recursive=True)]
        return sum(sum(member.cpu_times()[:2]) for member in family)
    except psutil.Error:
        return None


def _machine_busy_seconds() -> tuple[float, float]:
    """Return (busy, total) CPU seconds of the whole machine, all cores."""
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    total = sum(times)
    return total - idle, total


@dataclass
class CpuWatch:
    """Who used the CPU while the load ran, sampled from the first request on.

    Each process (with its children) as a share of one core, and the whole machine as
    a share of all its cores: on a small machine this tells whether the service or the
    load generator was the bottleneck.
    """

    pids: dict[str, int]
    first: tuple[float, dict[str, float | None], tuple[float, float]] | None = None
    last: tuple[float, dict[str, float | None], tuple[float, float]] | None = None

    def sample(self) -> None:
        """Take a sample; the first one is the baseline."""
        now = (
            time.monotonic(),
            {name: _cpu_seconds(pid) for name, pid in self.pids.items()},
            _machine_busy_seconds(),
        )
        if self.first is None:
            self.first = now
        else:
            self.last = now

    def shares(self) -> dict[str, float | None]:
        """Return the CPU shares between the first and the last sample."""
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return {}
        wall = self.last[0] - self.first[0]
        shares: dict[str, float | None] = {}
        for name in self.pids:
            start, end = self.first[1][name], self.last[1][name]
            shares[name] = None if start is None or end is None else round((end - start) / wall, 2)
        busy = self.last[2][0] - self.first[2][0]
        total = self.last[2][1] - self.first[2][1]
        shares["machine"] = round(busy / total, 2) if total else None
        return shares


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_stats_csv(path: Path) -> dict[str, Any]:
    """Return the Aggregated row of Locust's `_stats.csv`: counts, RPS and percentiles (ms)."""
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("Name") == "Aggregated"]
    if not rows:
        raise LabError(f"Locust wrote no Aggregated row in {path}")
    row = rows[0]
    requests = int(row["Request Count"])
    failures = int(row["Failure Count"])
    return {
        "requests": requests,
        "failures": failures,
        "rps": round(_number(row["Requests/s"]) or 0.0, 1),
        "latency_ms": {name: _number(row[column]) for name, column in _CSV_PERCENTILES},
    }


_CSV_PERCENTILES = (("p50", "50%"), ("p95", "95%"), ("p99", "99%"), ("p99.9", "99.9%"))


def parse_history_csv(path: Path) -> list[dict[str, float | None]]:
    """Return Locust's per-second Aggregated rows: users, req/s and p50/p95/p99 (ms).

    Run with `--csv-full-history`, so each row's percentiles cover Locust's recent
    window (the last 10 s), not everything since the start.
    """
    try:
        with path.open(newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if row.get("Name") == "Aggregated"]
    except OSError:
        return []
    if not rows:
        return []
    start = int(rows[0]["Timestamp"])
    return [
        {
            "t_s": int(row["Timestamp"]) - start,
            "users": _number(row["User Count"]),
            "rps": _number(row["Requests/s"]),
            **{name: _number(row[column]) for name, column in _CSV_PERCENTILES[:3]},
        }
        for row in rows
    ]


def _report_progress(
    label: str, started: float, duration_s: int, path: Path, progress: Progress
) -> None:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        progress(f"{label}: {time.monotonic() - started:.0f}/{duration_s} s, starting")
        return
    rate = state["responses"] / state["seconds"] if state["seconds"] else 0.0
    progress(
        f"{label}: {time.monotonic() - started:.0f}/{duration_s} s, {state['users']} users, "
        f"{rate:.0f} req/s, {state['requests']} requests, {state['failures']} failures"
    )


def run_locust(
    label: str,
    locustfile: Path,
    host: str,
    profile: LoadProfile,
    *,
    raw_dir: Path,
    env: Mapping[str, str],
    processes: Processes,
    progress: Progress,
    watch: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Run Locust headless against `host`; return its figures and the locustfile's tally.

    `watch` names processes (the service) whose CPU use is reported with Locust's own.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    tally_path, progress_path = raw_dir / "tally.json", raw_dir / "progress.json"
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "-u",
        str(profile.users),
        "-r",
        str(profile.spawn_rate),
        "-t",
        f"{profile.duration_s}s",
        "--host",
        host,
        "--csv",
        str(raw_dir / "locust"),
        "--csv-full-history",
        "--reset-stats",
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--stop-timeout",
        "1",
    ]
    locust_env = {
        **env,
        "BENCH_SEED": str(profile.seed),
        "BENCH_USERS": str(profile.users),
        "BENCH_TARGET_RPS": str(profile.target_rps or ""),
        "BENCH_TALLY": str(tally_path),
        "BENCH_PROGRESS": str(progress_path),
    }
    started = time.monotonic()
    child = spawn(command, locust_env, raw_dir / "locust.log", processes, f"locust {label}")
    cpu = CpuWatch({**(watch or {}), "locust": child.pid})
    try:
        deadline = started + profile.duration_s + _LOCUST_GRACE_S
        next_report = started + _PROGRESS_EVERY_S
        while child.poll() is None:
            now = time.monotonic()
            if now > deadline:
                raise LabError(f"Locust ({label}) did not finish in time [log: {raw_dir}]")
            if now >= next_report:
                _report_progress(label, started, profile.duration_s, progress_path, progress)
                next_report = now + _PROGRESS_EVERY_S
            if cpu.first is not None or progress_path.exists():  # from the end of the ramp
                cpu.sample()
            time.sleep(0.2)
    finally:
        stop(child)
    if child.returncode not in _LOCUST_OK_CODES:
        log = raw_dir / "locust.log"
        raise LabError(
            f"Locust ({label}) exited with {child.returncode}: {last_error_line(log)} [log: {log}]"
        )
    result = _locust_result(raw_dir, tally_path, profile)
    result["cpu_share"] = shares = cpu.shares()
    service = shares.get("service")
    result["service_cpu_ms_per_request"] = (
        round(service * 1000 / result["rps"], 3) if service and result["rps"] else None
    )
    return result


def _locust_result(raw_dir: Path, tally_path: Path, profile: LoadProfile) -> dict[str, Any]:
    stats = parse_stats_csv(raw_dir / "locust_stats.csv")
    try:
        tally: dict[str, Any] = json.loads(tally_path.read_text())
    except (OSError, ValueError) as exc:
        raise LabError(f"the locustfile wrote no tally ({exc}) [log: {raw_dir}]") from None
    responses = tally["responses"]
    return {
        "users": profile.users,
        "spawn_rate": profile.spawn_rate,
        "duration_s": profile.duration_s,
        "target_rps": profile.target_rps,
        "requests": stats["requests"],
        "failures": stats["failures"],
        "rps": stats["rps"],
        "error_rate": round(stats["failures"] / stats["requests"], 6)
        if stats["requests"]
        else None,
        "rejection_rate": round(tally["rejected"] / responses, 6) if responses else None,
        "latency_ms": tally["latency_ms"],
        "latency_histogram_ms": tally["latency_histogram_ms"],
        "locust_latency_ms": stats["latency_ms"],
        "timeline": parse_history_csv(raw_dir / "locust_stats_history.csv"),
        "checks": tally["checks"],
        "examples": tally["examples"],
    }


async def delete_keys(redis_url: str, *patterns: str) -> int:
    """Unlink every key matching `patterns` (what a run left in Redis); return how many."""
    client = redis_client(redis_url)
    deleted = 0
    try:
        for pattern in patterns:
            batch: list[bytes] = []
            async for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:  # noqa: PLR2004 - a batch size
                    deleted += await client.unlink(*batch)
                    batch = []
            if batch:
                deleted += await client.unlink(*batch)
    finally:
        await client.aclose()
    return deleted
