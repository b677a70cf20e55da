"""`lab bench rate-limiter` as a user runs it: real services, real Locust, one results file."""

import json
from pathlib import Path

import psutil
import pytest

from benchmarks import report
from labs.settings import ServerUrls
from labs.testing.pytest_plugin import LabRunner

pytestmark = pytest.mark.slow

RUNS = {"rate-limiter", "rate-limiter@half-peak", "limits-app"}


def processes_mentioning(*needles: str) -> list[str]:
    """Live processes whose command line or environment names one of `needles`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            where = " ".join(proc.info["cmdline"] or []) + " " + " ".join(proc.environ().values())
        except psutil.Error:
            continue
        if any(needle in where for needle in needles):
            found.append(f"{proc.pid}: {' '.join(proc.info['cmdline'] or [])}")
    return found


def test_bench_writes_ratios_and_verdicts_and_leaves_no_process(
    lab: LabRunner, lab_urls: ServerUrls, tmp_path: Path, cli_state_dir: Path
) -> None:
    """A tiny profile: every run checked and exact, goals judged, CSVs kept, nothing left."""
    result = lab(
        "bench",
        "rate-limiter",
        "--users",
        "2",
        "--duration",
        "3",
        "--decisions",
        "100",
        "--out",
        str(tmp_path),
        REDIS_URL=lab_urls.require("redis_url"),
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "req/s" in result.stderr  # progress while Locust runs
    (path,) = (tmp_path / "rate-limiter").glob("*.json")
    document = json.loads(path.read_text())

    assert document["target"] == "rate-limiter"
    assert document["profile"]["users"] == 2
    assert document["profile"]["duration_s"] == 3
    assert document["profile"]["seed"] == 7
    assert {"cpu", "cores", "memory_gib", "os", "python"} <= set(document["machine"])
    assert document["versions"]["redis_server"].startswith("valkey 9.")
    assert document["versions"]["limits"]

    results = document["results"]
    assert set(results["runs"]) == RUNS
    for name, run in results["runs"].items():
        assert run["requests"] > 0, name
        assert run["failures"] == 0, (name, run["examples"])
        assert run["error_rate"] == 0
        assert run["checks"]["mismatches"] == 0, (name, run["examples"])
        assert 0 < run["rejection_rate"] < 0.5  # 2 of every 10 requests per key are denied
        assert run["latency_ms"]["p50"] <= run["latency_ms"]["p99"]
        histogram = run["latency_histogram_ms"]
        assert (
            sum(count for _, _, count in histogram)
            == run["checks"]["allowed"] + run["checks"]["denied"]
        )
        assert run["timeline"], name  # Locust's per-second history
        stats = tmp_path / "rate-limiter" / run["raw"] / "locust_stats.csv"
        assert stats.is_file()
    half = results["runs"]["rate-limiter@half-peak"]
    assert half["target_rps"] == pytest.approx(results["runs"]["rate-limiter"]["rps"] / 2, abs=1)

    for app in ("rate-limiter", "limits-app"):
        assert results["correctness"][app]["exact"] is True
        assert results["correctness"][app]["admitted"] == 8

    decisions = results["decisions"]
    assert decisions["decision"]["checked"]["mismatches"] == 0
    assert decisions["noop"]["sequential"]["rt_ms"]["p50"] > 0
    assert results["peer_ratios"]["limits-app"]["rps"] > 0
    ratios = results["ratios"]
    assert ratios["decision_rt_p50_vs_noop_evalsha"] > 0
    assert ratios["service_rps_vs_limits_app"] > 0
    assert [goal["id"] for goal in results["goals"]] == [
        "decision-rt",
        "throughput-vs-limits",
        "p99-at-half-peak",
    ]
    assert all(isinstance(goal["met"], bool) for goal in results["goals"])

    assert results["processes_left"] == []
    assert processes_mentioning(str(tmp_path), str(cli_state_dir)) == []

    table = report.render_table(document)
    assert "| rate-limiter |" in table
    assert table in result.stdout
