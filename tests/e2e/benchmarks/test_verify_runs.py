"""`lab verify` running its commands: real `lab` processes, one run per command, crashes failed."""

from pathlib import Path

import pytest

from benchmarks.claims import parse_claims
from benchmarks.report import load
from benchmarks.verify import Mode, Verdict, failed_runs, run_verify
from labs.settings import ServerUrls

pytestmark = pytest.mark.slow


def test_verify_runs_each_command_once_and_a_crash_is_a_failed_run(
    lab_urls: ServerUrls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two measures share one real run; a command that exits non-zero fails its measure."""
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "state"))  # servers by URL: none started
    monkeypatch.setenv("REDIS_URL", lab_urls.require("redis_url"))
    monkeypatch.setenv("DATABASE_URL", lab_urls.require("database_url"))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", lab_urls.require("kafka_bootstrap_servers"))
    window = {
        "status": "measurable",
        "command": "lab experiment sliding-window",
        "results": "sliding-window-error.json",
        "compare": "<=",
    }
    claims = parse_claims(
        {
            "schema": 1,
            "claims": [
                {
                    "id": "window",
                    "part": "rate-limiter",
                    "quote": "Sliding windows.",
                    "measures": [
                        {
                            **window,
                            "what": "steady",
                            "metric": "results.rows[1].overshoot_pct",
                            "threshold": 0,
                        },
                        {
                            **window,
                            "what": "worst",
                            "metric": "results.rows[*].overshoot_pct",
                            "aggregate": "max",
                            "threshold": 0,
                        },
                        {
                            **window,
                            "what": "crash",
                            "command": "lab experiment sliding-window --seed x",
                            "metric": "results.seconds",
                            "threshold": 1,
                        },
                    ],
                }
            ],
        }
    )
    lines: list[str] = []
    path = run_verify(claims, Mode.QUICK, progress=lines.append, verify_dir=tmp_path)
    document = load(path)
    runs = document["results"]["runs"]
    assert [run["command"] for run in runs] == [
        "lab experiment sliding-window",
        "lab experiment sliding-window --seed x",
    ]
    assert [run["command"] for run in failed_runs(document)] == [
        "lab experiment sliding-window --seed x"
    ]
    steady, worst, crash = document["results"]["claims"][0]["measures"]
    assert (steady["verdict"], steady["value"]) == (Verdict.MET, 0.0)
    assert worst["verdict"] == Verdict.NOT_MET
    assert worst["value"] > 0
    assert steady["size"] == "quick"
    assert crash["verdict"] == Verdict.FAILED
    assert "exited with 2" in crash["reason"]
    assert any(line.startswith("lab experiment sliding-window: ") for line in lines)
