"""`lab up`, `lab status` and `lab down` as a user runs them: real processes, real kills."""

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest

from labs.settings import ServerUrls
from labs.testing.pytest_plugin import LabRunner, LabService

pytestmark = pytest.mark.slow


def statuses(lab: LabRunner) -> dict[str, dict[str, object]]:
    """Return `lab status --json` by server name."""
    result = lab("status", "--json")
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def lab_processes(state_dir: Path) -> list[psutil.Process]:
    """Every live process that runs in the state directory or names it on its command line."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        where = " ".join([*(proc.info["cmdline"] or []), proc.info["cwd"] or ""])
        if str(state_dir) in where and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def assert_one_line_error(result: subprocess.CompletedProcess[str], starts: str) -> None:
    """The command failed with a single `lab: ...` line and no traceback."""
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"lab: {starts}"), lines[0]
    assert "Traceback" not in result.stderr


def test_up_reuses_running_servers_and_down_leaves_no_process(
    lab: LabRunner, cli_state_dir: Path
) -> None:
    """Three healthy servers; a second `up` keeps their pids; `down` ends every process."""
    first = lab("up")
    assert first.returncode == 0, first.stderr
    before = statuses(lab)
    assert set(before) == {"redis", "postgres", "kafka"}
    assert all(entry["healthy"] for entry in before.values())
    assert "valkey 9." in str(before["redis"]["version"])
    assert "postgresql 18" in str(before["postgres"]["version"])

    assert lab("up").returncode == 0
    after = statuses(lab)
    assert {name: entry["pid"] for name, entry in after.items()} == {
        name: entry["pid"] for name, entry in before.items()
    }
    assert len(lab_processes(cli_state_dir)) >= 3

    down = lab("down")
    assert down.returncode == 0
    assert down.stdout.strip() == "stopped: redis, postgres, kafka"
    assert lab_processes(cli_state_dir) == []
    again = lab("down")
    assert again.returncode == 0
    assert "nothing to stop" in again.stdout


def test_status_reports_a_killed_server_down_and_up_restarts_it(lab: LabRunner) -> None:
    """SIGKILL the Redis server: status says DOWN and exits 1; `up` brings a new one."""
    assert lab("up").returncode == 0
    victim = int(str(statuses(lab)["redis"]["pid"]))
    os.kill(victim, signal.SIGKILL)

    result = lab("status")
    assert result.returncode == 1
    redis_row = next(line for line in result.stdout.splitlines() if line.startswith("redis"))
    assert "DOWN" in redis_row
    assert f"process {victim} is gone" in redis_row
    assert statuses(lab)["postgres"]["healthy"] is True

    assert lab("up").returncode == 0
    revived = statuses(lab)["redis"]
    assert revived["healthy"] is True
    assert revived["pid"] != victim


def test_a_taken_port_fails_in_one_line_and_stops_what_was_started(
    lab: LabRunner, cli_state_dir: Path
) -> None:
    """Kafka's port is taken: Redis and PostgreSQL, already started, are stopped again."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = lab("up", "--kafka-port", str(port))
    assert_one_line_error(result, f"port {port} for kafka is taken by another process")
    assert "no lab servers are running" in lab("status").stdout
    assert lab_processes(cli_state_dir) == []


def test_a_corrupt_data_dir_fails_in_one_line_with_the_reason(
    lab: LabRunner, cli_state_dir: Path
) -> None:
    """PostgreSQL refuses a damaged data dir: `up` says why and what to do, and leaves nothing."""
    assert lab("up").returncode == 0
    assert lab("down").returncode == 0
    control = cli_state_dir / "postgres" / "data" / "global" / "pg_control"
    control.write_bytes(b"\0" * control.stat().st_size)
    result = lab("up")
    assert_one_line_error(result, "postgres exited at start")
    assert "lab down --purge" in result.stderr
    assert lab_processes(cli_state_dir) == []
    assert lab("down", "--purge").returncode == 0
    assert lab("up").returncode == 0


def test_a_server_given_by_url_is_used_and_never_stopped(
    lab: LabRunner, lab_urls: ServerUrls
) -> None:
    """With REDIS_URL set, `up` starts no Redis, status says external, `down` leaves it running."""
    redis_url = lab_urls.require("redis_url")
    up = lab("up", REDIS_URL=redis_url)
    assert up.returncode == 0, up.stderr
    entry = statuses(lab)["redis"]
    assert entry["managed"] is False
    assert entry["pid"] is None
    down = lab("down")
    assert "redis" not in down.stdout
    assert lab("up", REDIS_URL="redis://127.0.0.1:1/0").returncode == 1


def test_bad_input_gets_one_line(lab: LabRunner) -> None:
    """Unknown service, unknown demo, out-of-range port: one line each, exit non-zero."""
    assert_one_line_error(lab("serve", "nope"), "unknown service 'nope'")
    assert_one_line_error(lab("demo", "nope"), "unknown demo 'nope'")
    result = lab("up", "--redis-port", "70000")
    assert result.returncode == 2
    assert result.stderr.startswith("lab: Invalid value for '--redis-port'")


def test_demo_proves_the_smoke_guarantee_on_the_servers_it_is_given(
    lab: LabRunner, lab_urls: ServerUrls
) -> None:
    """`lab demo smoke` writes and reads each server and prints one PROVED line."""
    result = lab(
        "demo",
        "smoke",
        REDIS_URL=lab_urls.require("redis_url"),
        DATABASE_URL=lab_urls.require("database_url"),
        KAFKA_BOOTSTRAP_SERVERS=lab_urls.require("kafka_bootstrap_servers"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("PROVED smoke: real servers answer: Redis")
    assert "10/10 messages in order" in result.stdout


def test_serve_runs_the_service_as_compose_does(
    lab_urls: ServerUrls, lab_service: LabService
) -> None:
    """`lab serve servers --host --port` with server URLs in the environment, as in compose."""
    with lab_service(
        "servers",
        LAB_ADMIN_TOKEN="compose-token",  # noqa: S106 - a test's own token
        REDIS_URL=lab_urls.require("redis_url"),
        DATABASE_URL=lab_urls.require("database_url"),
        KAFKA_BOOTSTRAP_SERVERS=lab_urls.require("kafka_bootstrap_servers"),
    ) as service:
        health = httpx.get(f"{service.url}/healthz", timeout=10)
        assert health.status_code == 200
        assert health.json()["checks"] == {"redis": "ok", "postgres": "ok", "kafka": "ok"}
    assert service.returncode in {0, -signal.SIGTERM}  # uvicorn re-raises the signal it handled
    assert '"msg": "Application shutdown complete."' in service.log
    assert '"service": "servers"' in service.log
