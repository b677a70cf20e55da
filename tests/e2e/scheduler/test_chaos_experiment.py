"""The chaos experiment on tiny counts: real worker processes, a real SIGKILL, a rolling restart.

One run (300 jobs, 2 workers, 1 kill, a 300-job DLQ phase) is shared by the tests of
this module; it takes about half a minute, most of it worker start-up.
"""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from labs.experiments import ExperimentContext, Size
from labs.settings import ServerUrls
from scheduler.experiments.chaos import run_plan
from scheduler.experiments.chaos_plan import NAME, Plan

TINY = Plan(
    "tiny",
    jobs=300,
    produce_s=4,
    workers=2,
    concurrency=8,
    kills=1,
    dlq_jobs=300,
    dlq_produce_s=4,
    settle_timeout_s=60,
    # The test runs inside the whole suite on 2 busy cores: with the experiment's 2 s
    # lease, a live worker's event loop stalled for 1.3 s lost a lease once (a duplicate
    # no kill explains). 5 s keeps this test about kills; the full run keeps 2 s.
    lease_ms=5_000,
)
CHECKS = {
    "every job succeeded or dead",
    "always-failing jobs dead at the cap (5)",
    "duplicates only from kills",
    "killed deliveries redelivered",
    "audit log agrees with final states",
    "Redis memory flat while the DLQ grows",
}


@pytest.fixture(scope="module")
def results(lab_urls: ServerUrls, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the tiny plan once; return the results file's content."""
    directory = tmp_path_factory.mktemp("chaos")
    context = ExperimentContext(
        urls=lab_urls, size=Size.QUICK, seed=3, results_dir=directory, progress=lambda _: None
    )
    summary = asyncio.run(run_plan(context, TINY))
    document: dict[str, Any] = json.loads((directory / f"{NAME}.json").read_text())
    assert document["results"]["summary"] == summary
    assert (directory / f"{NAME}.png").stat().st_size > 0
    document["directory"] = directory
    return document


def by_name(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The results' checks by name."""
    return {check["name"]: check for check in results["results"]["checks"]}


@pytest.mark.timeout(300)
def test_the_results_file_reports_every_check_and_the_timeline(results: dict[str, Any]) -> None:
    """The results file reports every check with its figure, the kill, the restart and memory."""
    body = results["results"]
    assert set(by_name(results)) == CHECKS
    assert all(isinstance(check["passed"], bool) and check["figure"] for check in body["checks"])
    assert body["passed"] == all(check["passed"] for check in body["checks"])
    assert body["summary"].startswith("PASSED" if body["passed"] else "FAILED")
    assert [kill["worker"] for kill in body["kills"]] != []
    assert len(body["rolling_restart"]) == TINY.workers
    in_flight = sum(kill["in_flight"] for kill in body["kills"])
    assert body["redelivery"]["count"] == len(body["redelivery_times_s"]) <= in_flight
    assert body["memory"]["chaos_phase"]
    assert body["memory"]["dlq_phase"]
    assert body["executions"] >= TINY.jobs + TINY.dlq_jobs * 5
    assert Path(results["directory"], f"{NAME}.png").exists()


@pytest.mark.timeout(300)
def test_nothing_is_stuck_redelivered_late_or_duplicated_beyond_the_kills(
    results: dict[str, Any],
) -> None:
    """No job is stuck, every killed delivery ran again, and duplicates stay within the kills."""
    checks = by_name(results)
    assert checks["every job succeeded or dead"]["details"]["stuck"] == 0
    assert checks["killed deliveries redelivered"]["passed"], checks[
        "killed deliveries redelivered"
    ]
    assert checks["duplicates only from kills"]["passed"], checks["duplicates only from kills"]
    assert results["results"]["redelivery"]["max_s"] < TINY.lease_ms / 1000 + 10


@pytest.mark.timeout(300)
def test_every_check_passes(results: dict[str, Any]) -> None:
    """Every check passes: none lost, the cap held, the audit log agrees, memory stays flat."""
    failed = {
        name: check["figure"] for name, check in by_name(results).items() if not check["passed"]
    }
    assert failed == {}
