"""`lab bench scheduler` as a user runs it: real workers of ours and of a peer, one results file."""

import json
from pathlib import Path

import pytest

from benchmarks import report
from labs.settings import ServerUrls
from labs.testing.pytest_plugin import LabRunner

pytestmark = pytest.mark.slow

# taskiq-redis re-delivers an unacknowledged message only after 10 minutes, so in a short
# run any duplicate would be a fault; SAQ's sweep may re-run a job on a starved machine.
SYSTEMS = ("scheduler+audit", "taskiq-redis")
JOBS = 40
QUICK_WARMUP = 4  # 10% of the jobs when --jobs shrinks the quick profile
QUICK_IDLE = 30
QUICK_LOADED = 200 * 3  # jobs/s x seconds


def test_quick_run_accounts_for_every_job_and_judges_the_goals(
    lab: LabRunner, lab_urls: ServerUrls, tmp_path: Path
) -> None:
    """Ours (audit on) and taskiq-redis, tiny counts: every job started once, figures, verdicts."""
    result = lab(
        "bench",
        "scheduler",
        "--systems",
        ",".join(SYSTEMS),
        "--jobs",
        str(JOBS),
        "--out",
        str(tmp_path),
        REDIS_URL=lab_urls.require("redis_url"),
        DATABASE_URL=lab_urls.require("database_url"),
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "started" in result.stderr  # progress while the workers run
    (path,) = (tmp_path / "scheduler").glob("*.json")
    assert path.with_suffix(".png").stat().st_size > 0
    document = json.loads(path.read_text())

    assert document["target"] == "scheduler"
    assert document["profile"]["jobs"] == JOBS
    assert document["profile"]["seed"] == 7
    assert {"cpu", "cores", "memory_gib", "os", "python"} <= set(document["machine"])
    assert document["commit"]
    assert document["versions"]["taskiq-redis"]

    results = document["results"]
    assert list(results["systems"]) == list(SYSTEMS)
    expected = QUICK_WARMUP + JOBS + QUICK_IDLE + QUICK_LOADED
    for name, run in results["systems"].items():
        assert run["jobs"] == {"enqueued": expected, "started": expected, "duplicates": 0}, name
        assert run["enqueue"]["per_s"] > 0
        assert run["process"]["per_s"] > 0
        assert run["pickup_idle_ms"]["jobs"] == QUICK_IDLE
        assert run["pickup_loaded_ms"]["jobs"] == QUICK_LOADED
        assert 0 < run["pickup_idle_ms"]["p50"] <= run["pickup_idle_ms"]["p99"]
        assert run["knobs"]
    assert results["ratios"]["process"]["fastest_peer"] == "taskiq-redis"
    assert results["ratios"]["process"]["vs_fastest_peer"]["taskiq-redis"] == 1.0
    assert [goal["id"] for goal in results["goals"]] == ["process-throughput", "idle-pickup-p99"]
    assert all(isinstance(goal["met"], bool) for goal in results["goals"])
    assert results["processes_left"] == []

    table = report.render_table(document)
    assert "| scheduler+audit |" in table
    assert table in result.stdout
