"""The scheduler benchmark's arithmetic: accounting, throughput, pickup, ratios, verdicts."""

from typing import Any

import pytest

from benchmarks.scheduler import stats
from benchmarks.scheduler.recorder import parse_starts
from labs.errors import LabError

MS = 1_000_000
S = 1_000_000_000


def system(process: float | None, idle_p99: float | None = 1.0) -> dict[str, Any]:
    """A system's figures as `judge` and `ratios` read them."""
    return {
        "enqueue": {"per_s": 1_000.0},
        "process": {"per_s": process},
        "pickup_idle_ms": {"jobs": 10, "p50": 0.5, "p99": idle_p99},
    }


def test_starts_parse_into_each_jobs_stamps() -> None:
    """Each `index:ns` entry lands under its index; a re-delivery adds a second stamp."""
    assert parse_starts([b"3:100", "4:200", b"3:300"]) == {3: [100, 300], 4: [200]}


def test_accounting_counts_duplicates_when_every_job_started() -> None:
    """Every job started: enqueued equals started, and re-deliveries are counted."""
    counts = stats.account("x", range(3), {0: [1], 1: [2, 5], 2: [3]})
    assert counts == {"enqueued": 3, "started": 3, "duplicates": 1}


def test_a_job_that_never_started_voids_the_run() -> None:
    """A lost job raises, naming how many were lost, instead of yielding a throughput."""
    with pytest.raises(LabError, match="1 of 3 jobs never started"):
        stats.account("x", range(3), {0: [1], 2: [3]})


def test_a_job_nobody_enqueued_voids_the_run() -> None:
    """A start for an index outside the plan (another run's job) is an error too."""
    with pytest.raises(LabError, match="1 unknown jobs started"):
        stats.account("x", range(2), {0: [1], 1: [2], 7: [3]})


def test_process_throughput_leaves_the_warm_up_ramp_out() -> None:
    """The window runs from the last warm-up start to the last start, in time order."""
    starts = [5 * S, 0, 1 * S, 3 * S, 2 * S]  # a slow start-up, then one job a second
    figure = stats.process_throughput(starts, warmup=2)
    assert figure == {"jobs": 3, "warmup_jobs": 2, "seconds": 4.0, "per_s": 0.8}


def test_process_throughput_needs_a_warm_up_and_a_measured_job() -> None:
    """No warm-up, or nothing after it, is refused rather than divided by zero."""
    with pytest.raises(ValueError, match="warm-up"):
        stats.process_throughput([1, 2], warmup=0)
    with pytest.raises(ValueError, match="warm-up"):
        stats.process_throughput([1, 2], warmup=2)


def test_pickup_is_enqueue_to_first_start() -> None:
    """A re-delivered job's pickup is its first start, not its last."""
    enqueued = {1: 10 * MS, 2: 20 * MS}
    starts = {1: [13 * MS, 90 * MS], 2: [20 * MS + MS // 2]}
    assert stats.pickup_ms(enqueued, starts) == [3.0, 0.5]


def test_ratios_are_against_the_fastest_peer_never_our_variants() -> None:
    """Our two variants are not peers: the fastest peer is the best of the others."""
    systems = {
        "scheduler+audit": system(300.0),
        "scheduler": system(900.0),
        "saq": system(200.0),
        "streaq": system(250.0),
    }
    process = stats.ratios(systems)["process"]
    assert process["fastest_peer"] == "streaq"
    assert process["vs_fastest_peer"] == {
        "scheduler+audit": 1.2,
        "scheduler": 3.6,
        "saq": 0.8,
        "streaq": 1.0,
    }


@pytest.mark.parametrize(
    ("ours", "idle_p99", "verdicts"),
    [
        (150.0, 5.0, [True, True]),  # both exactly at their thresholds
        (149.0, 5.01, [False, False]),
        (None, None, [False, False]),  # nothing measured is never a pass
    ],
)
def test_goals_are_judged_on_the_audited_variant(
    ours: float | None, idle_p99: float | None, verdicts: list[bool]
) -> None:
    """Throughput >= 1.5x the fastest peer and idle p99 <= 5 ms, each met or missed."""
    systems = {
        "scheduler+audit": system(ours, idle_p99),
        "scheduler": system(1_000.0, 0.1),  # the unaudited variant does not count
        "saq": system(100.0),
    }
    goals = stats.judge(systems)
    assert [goal["id"] for goal in goals] == ["process-throughput", "idle-pickup-p99"]
    assert [goal["met"] for goal in goals] == verdicts
    assert "scheduler+audit" in goals[0]["goal"]


def test_without_a_peer_the_throughput_goal_is_missed() -> None:
    """With no peer measured there is no ratio, and the goal says so by missing."""
    (throughput, _) = stats.judge({"scheduler": system(500.0)})
    assert throughput["figure"] is None
    assert throughput["met"] is False


def test_cpu_per_job_is_worker_cores_times_the_window_over_its_jobs() -> None:
    """1.5 cores for 2 s over 1,000 jobs is 3 ms of worker CPU per job."""
    shares = {"workers-0": 0.75, "workers-1": 0.75, "machine": 0.9}
    figure = stats.cpu_use(shares, {"jobs": 1_000, "seconds": 2.0})
    assert figure == {"worker_cores": 1.5, "machine_busy": 0.9, "worker_cpu_ms_per_job": 3.0}
    assert stats.cpu_use({}, {"jobs": 1, "seconds": 1.0})["worker_cpu_ms_per_job"] is None


def one_round(process: float, idle_ms: list[float], duplicates: int = 0) -> dict[str, Any]:
    """One round's measurement as `runner._measure` returns it."""
    return {
        "jobs": {"enqueued": 10, "started": 10, "duplicates": duplicates},
        "enqueue": {"jobs": 5, "per_s": process * 2},
        "process": {
            "jobs": 5,
            "per_s": process,
            "cpu": {"worker_cores": 1.0, "machine_busy": 0.5, "worker_cpu_ms_per_job": 1.0},
        },
        "idle_ms": idle_ms,
        "loaded_ms": [1.0],
        "loaded_reached_per_s": 99.0,
    }


def test_rounds_give_median_throughput_and_pooled_latency() -> None:
    """Three rounds: the median rate resists one slow round; p99 covers every job."""
    rounds = [one_round(100.0, [1.0]), one_round(10.0, [2.0]), one_round(120.0, [50.0], 1)]
    summary = stats.summarize(rounds, loaded_rate=100.0)
    assert summary["process"]["per_s"] == 100.0
    assert summary["enqueue"]["per_s"] == 200.0
    assert summary["pickup_idle_ms"]["jobs"] == 3
    assert summary["pickup_idle_ms"]["max"] == 50.0
    assert summary["jobs"] == {"enqueued": 30, "started": 30, "duplicates": 1}
    assert [r["process_per_s"] for r in summary["rounds"]] == [100.0, 10.0, 120.0]
