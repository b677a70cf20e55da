"""The chaos checker: a clean run passes, and each kind of violation is caught and counted."""

from dataclasses import replace

import pytest

from scheduler.experiments.checker import (
    Evidence,
    Execution,
    FinalState,
    Kill,
    MemorySample,
    check_always_failing,
    check_audit,
    check_duplicates,
    check_memory_bounded,
    check_redelivered,
    check_run,
    check_terminal,
    percentile,
    redelivery_times,
    spread,
)

WORKER, OTHER = 100, 200
KILL_AT = 50.0


def run(job: str, attempt: int, at: float, *, fails: bool = False, pid: int = OTHER) -> Execution:
    """An execution of `job` at `at`."""
    return Execution(job_id=job, attempt=attempt, started_at=at, fails=fails, pid=pid)


def clean() -> Evidence:
    """A run where everything held.

    `ok` succeeded at once; `flaky` failed once then succeeded; `fail` died after 5
    failures; `killed` was running on the killed worker and ran again 2 s later.
    """
    return Evidence(
        enqueued=["ok", "flaky", "fail", "killed"],
        always_failing=frozenset({"fail"}),
        executions=[
            run("ok", 1, 10.0),
            run("flaky", 1, 11.0, fails=True),
            run("flaky", 2, 12.0),
            *(run("fail", n, 10.0 + n, fails=True) for n in range(1, 6)),
            run("killed", 1, 49.0, pid=WORKER),
            run("killed", 2, KILL_AT + 2.0),
        ],
        kills=[Kill(at=KILL_AT, worker="w1", pid=WORKER, in_flight=frozenset({"killed"}))],
        states={
            "ok": FinalState("succeeded", 1),
            "flaky": FinalState("succeeded", 2),
            "fail": FinalState("dead", 5),
            "killed": FinalState("succeeded", 2),
        },
        dead_rows={"fail": 5},
        last_audit={"ok": "succeeded", "flaky": "succeeded", "fail": "dead", "killed": "succeeded"},
        in_redis=frozenset(),
        max_attempts=5,
    )


def failed(evidence: Evidence) -> list[str]:
    """The names of the checks that failed."""
    return [check.name for check in check_run(evidence) if not check.passed]


def test_a_clean_run_passes_every_check() -> None:
    """A clean run (a retry, a death at the cap, a kill and its redelivery) passes every check."""
    assert failed(clean()) == []


def test_a_job_gone_from_redis_without_a_final_state_is_lost() -> None:
    """A job gone from Redis without a final state is lost, and told apart by who ran it last."""
    states = dict(clean().states)
    del states["killed"]
    states["ok"] = FinalState("running", 1)
    never_rerun = [each for each in clean().executions if each.started_at <= KILL_AT]
    check = check_terminal(replace(clean(), states=states, executions=never_rerun))
    assert not check.passed
    assert check.details["lost"] == 2
    assert check.details["lost_but_ran"] == 2
    assert check.details["lost_on_killed_worker"] == 1
    assert check.details["lost_not_on_killed_worker_sample"] == ["ok"]


def test_a_job_that_never_ran_and_vanished_is_lost_and_not_counted_as_ran() -> None:
    """A job that never ran and vanished is lost, and not counted as having run."""
    evidence = replace(clean(), enqueued=[*clean().enqueued, "ghost"])
    check = check_terminal(evidence)
    assert not check.passed
    assert (check.details["lost"], check.details["lost_but_ran"]) == (1, 0)


def test_a_job_still_in_redis_is_stuck() -> None:
    """A job still in Redis at the end is stuck, whatever PostgreSQL says."""
    check = check_terminal(replace(clean(), in_redis=frozenset({"ok"})))
    assert not check.passed
    assert (check.details["stuck"], check.details["lost"]) == (1, 0)


def test_an_always_failing_job_dead_before_the_cap_fails_the_cap_check() -> None:
    """An always-failing job dead before the cap (or without its DLQ row) fails the cap check."""
    early = replace(clean(), states={**clean().states, "fail": FinalState("dead", 4)})
    assert not check_always_failing(early).passed
    no_row = replace(clean(), dead_rows={})
    assert not check_always_failing(no_row).passed
    assert check_always_failing(clean()).passed


def test_a_duplicate_beyond_the_jobs_in_flight_at_the_kills_is_unexplained() -> None:
    """A second successful run of a job no kill caught is an unexplained duplicate."""
    evidence = replace(clean(), executions=[*clean().executions, run("ok", 2, 30.0)])
    check = check_duplicates(evidence)
    assert not check.passed
    assert check.details == {
        "duplicates": 2,
        "in_flight_at_kills": 1,
        "unexplained": 1,
        "unexplained_jobs_run_on_a_killed_worker": 0,
        "unexplained_sample": ["ok"],
    }


def test_an_unexplained_duplicate_of_a_job_the_killed_worker_ran_is_told_apart() -> None:
    """A duplicate of a job the killed worker ran, missing from the snapshot, is told apart."""
    missed = [run("ok", 1, 49.5, pid=WORKER), run("ok", 2, KILL_AT + 2.0)]
    executions = [each for each in clean().executions if each.job_id != "ok"] + missed
    check = check_duplicates(replace(clean(), executions=executions))
    assert not check.passed
    assert check.details["unexplained_jobs_run_on_a_killed_worker"] == 1


def test_a_killed_jobs_rerun_is_an_allowed_duplicate_and_retries_are_none() -> None:
    """A killed job's rerun is an allowed duplicate; retries after a failure are not duplicates."""
    check = check_duplicates(clean())
    assert check.passed
    assert check.details["duplicates"] == 1
    assert check.details["in_flight_at_kills"] == 1


def test_a_dead_job_that_also_succeeded_once_has_a_duplicate() -> None:
    """A dead job needs no successful run, so one that had one counts a duplicate."""
    evidence = replace(clean(), executions=[*clean().executions, run("fail", 3, 13.5)])
    assert not check_duplicates(evidence).passed


def test_a_job_in_flight_at_a_kill_that_never_ran_again_is_missing() -> None:
    """A job in flight at a kill that never ran again is missing, unless it then died."""
    executions = [each for each in clean().executions if each.started_at <= KILL_AT]
    check = check_redelivered(replace(clean(), executions=executions))
    assert not check.passed
    assert check.details["sample"] == ["killed"]
    died = replace(
        clean(),
        executions=executions,
        states={**clean().states, "killed": FinalState("dead", 5)},
    )
    assert check_redelivered(died).passed


def test_an_audit_log_that_disagrees_with_the_final_state_fails() -> None:
    """A last audit event that differs from the state, or a DLQ row out of place, fails."""
    stale = replace(clean(), last_audit={**clean().last_audit, "ok": "started"})
    assert check_audit(stale).details["last_event_differs"] == 1
    unburied = replace(clean(), dead_rows={})
    assert check_audit(unburied).details["dead_without_dlq_row"] == 1
    stray = replace(clean(), dead_rows={**clean().dead_rows, "ok": 1})
    assert check_audit(stray).details["dlq_row_not_dead"] == 1
    assert not any(check_audit(each).passed for each in (stale, unburied, stray))


def test_redelivery_is_measured_from_the_kill_to_the_next_start() -> None:
    """Redelivery is measured from the kill to the job's next start."""
    assert redelivery_times(clean()) == [2.0]


def test_percentiles_use_the_nearest_rank() -> None:
    """Percentiles use the nearest rank; an empty list has none."""
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99)) == (50.0, 99.0)
    assert spread([]).p99_s is None
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def memory(used: list[int], dead_step: int = 100) -> list[MemorySample]:
    """Samples one second apart with the DLQ growing by `dead_step` each."""
    return [MemorySample(float(n), value, n * dead_step) for n, value in enumerate(used)]


def test_flat_memory_while_the_dlq_grows_passes() -> None:
    """Flat memory (with noise and a warm-up) while the DLQ grows passes."""
    used = [1_000_000, 1_500_000] + [2_000_000 + (n % 3) * 20_000 for n in range(18)]
    assert check_memory_bounded(memory(used), payload_bytes=4_096).passed


def test_memory_that_keeps_the_dead_jobs_fails() -> None:
    """Memory growing by the dead jobs' payloads fails."""
    used = [2_000_000 + n * 100 * 4_096 for n in range(20)]
    check = check_memory_bounded(memory(used), payload_bytes=4_096)
    assert not check.passed
    assert check.details["growth_bytes"] > check.details["allowed_bytes"]


def test_memory_check_needs_samples_and_a_growing_dlq() -> None:
    """Too few samples, or a DLQ that did not grow, cannot pass."""
    assert not check_memory_bounded(memory([1, 1, 1]), payload_bytes=4_096).passed
    assert not check_memory_bounded(memory([1] * 20, dead_step=0), payload_bytes=4_096).passed
