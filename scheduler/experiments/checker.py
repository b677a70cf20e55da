"""The chaos experiment's checker: pure functions from the evidence of a run to a verdict.

Pattern: the experiment gathers evidence from four independent witnesses — the ids it
enqueued, the execution ledger (every handler start, written to Redis by the handler
itself, `scheduler.experiments.ledger`), the kill records (which leases the victim
held at the instant it was killed) and PostgreSQL (each job's final state, its audit
rows and the dead-letter table) — and these functions compare them. No I/O, so every
violation is a unit test. Guarantee: each check is reported as passed or failed with
its figure, and a failure is never folded into a pass.

Definitions, so the figures mean one thing:

- **stuck**: still in Redis when the run ended (never finished);
- **lost**: gone from Redis without a terminal state (`succeeded` or `dead`) in
  PostgreSQL. The ledger tells apart a job that never ran from one whose outcome was
  not recorded (its audit events died with a SIGKILLed worker's write-behind buffer);
- **duplicate**: an execution that did not fail on purpose, beyond the one a
  succeeded job needs (a dead job needs none). Retries after a failure are not
  duplicates; the handler writes whether it will fail into the ledger before it does.
  At least once allows a duplicate only for a job whose delivery was cut short, so a
  job may have at most as many duplicates as kills that caught it in flight; any
  other is unexplained (a rolling restart must add none);
- **redelivery time**: for each job in flight at a kill, from the kill to the job's
  next execution start.
"""

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SUCCEEDED = "succeeded"
DEAD = "dead"
TERMINAL = frozenset({SUCCEEDED, DEAD})
SAMPLE_IDS = 5
"""Offending job ids listed per failed check, so a failure can be looked up."""
MEMORY_GROWTH_TOLERANCE = 0.25
"""Memory may grow by this share of the bytes the dead jobs would hold if Redis kept them."""


@dataclass(frozen=True)
class Execution:
    """One start of a job's handler, as the ledger recorded it."""

    job_id: str
    attempt: int
    started_at: float
    """Epoch seconds on the host's clock (the workers and the experiment share it)."""
    fails: bool
    """The handler had decided to fail this attempt (a flaky or failing job)."""
    pid: int
    """The worker process that ran it."""


@dataclass(frozen=True)
class Kill:
    """A worker SIGKILLed at `at`, holding the leases of `in_flight`."""

    at: float
    worker: str
    pid: int
    in_flight: frozenset[str]
    backlog: int = 0
    """Jobs waiting in the ready set at the kill: context for its redelivery times."""


@dataclass(frozen=True)
class FinalState:
    """A job's row in `scheduler_jobs`: its latest state and attempts."""

    state: str
    attempts: int


@dataclass(frozen=True)
class Evidence:
    """Everything the checks read, gathered after the run."""

    enqueued: Sequence[str]
    always_failing: frozenset[str]
    executions: Sequence[Execution]
    kills: Sequence[Kill]
    states: Mapping[str, FinalState]
    dead_rows: Mapping[str, int]
    """`scheduler_dead`: job id -> attempts at death."""
    last_audit: Mapping[str, str]
    """Each job's last `scheduler_audit` event, by event time (then row id)."""
    in_redis: frozenset[str]
    """Jobs whose hash was still in Redis at the end."""
    max_attempts: int


@dataclass(frozen=True)
class Check:
    """One property of the run: whether it held, the figure that says so, and the detail."""

    name: str
    passed: bool
    figure: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Spread:
    """Percentiles of a list of durations, in seconds (nearest rank)."""

    count: int
    p50_s: float | None
    p99_s: float | None
    max_s: float | None


@dataclass(frozen=True)
class MemorySample:
    """Redis `used_memory` and the dead-letter rows at one moment of a phase."""

    at: float
    used_memory: int
    dead_rows: int


def percentile(values: Sequence[float], q: float) -> float:
    """Return the nearest-rank `q`-quantile (0 < q <= 1) of non-empty `values`."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def spread(values: Sequence[float]) -> Spread:
    """Return the count, p50, p99 and max of `values` (None for an empty list)."""
    if not values:
        return Spread(count=0, p50_s=None, p99_s=None, max_s=None)
    return Spread(
        count=len(values),
        p50_s=percentile(values, 0.5),
        p99_s=percentile(values, 0.99),
        max_s=max(values),
    )


def _sample(ids: Iterable[str]) -> list[str]:
    return sorted(ids)[:SAMPLE_IDS]


def _last_runs(evidence: Evidence) -> dict[str, Execution]:
    last: dict[str, Execution] = {}
    for each in evidence.executions:
        if each.job_id not in last or each.started_at >= last[each.job_id].started_at:
            last[each.job_id] = each
    return last


def lost_jobs(evidence: Evidence) -> list[str]:
    """Return the jobs gone from Redis without a terminal state in PostgreSQL."""
    return [
        job_id
        for job_id in evidence.enqueued
        if job_id not in evidence.in_redis
        and (job_id not in evidence.states or evidence.states[job_id].state not in TERMINAL)
    ]


def check_terminal(evidence: Evidence) -> Check:
    """Every enqueued job ended `succeeded` or `dead`: none stuck in Redis, none lost."""
    stuck = [job_id for job_id in evidence.enqueued if job_id in evidence.in_redis]
    lost = lost_jobs(evidence)
    last = _last_runs(evidence)
    killed = {kill.pid for kill in evidence.kills}
    unrecorded = [job_id for job_id in lost if job_id in last]
    on_killed = [job_id for job_id in unrecorded if last[job_id].pid in killed]
    states = Counter(
        evidence.states[job_id].state for job_id in evidence.enqueued if job_id in evidence.states
    )
    figure = (
        f"{len(evidence.enqueued)} jobs: {states[SUCCEEDED]} succeeded, {states[DEAD]} dead, "
        f"{len(lost)} lost ({len(unrecorded)} ran but their outcome was never recorded: "
        f"{len(on_killed)} last ran on a SIGKILLed worker, {len(unrecorded) - len(on_killed)} "
        f"on one never killed), {len(stuck)} stuck"
    )
    details = {
        "jobs": len(evidence.enqueued),
        "succeeded": states[SUCCEEDED],
        "dead": states[DEAD],
        "lost": len(lost),
        "lost_but_ran": len(unrecorded),
        "lost_on_killed_worker": len(on_killed),
        "stuck": len(stuck),
        "lost_sample": _sample(lost),
        "lost_not_on_killed_worker_sample": _sample(set(unrecorded) - set(on_killed)),
        "stuck_sample": _sample(stuck),
    }
    return Check("every job succeeded or dead", not lost and not stuck, figure, details)


def check_always_failing(evidence: Evidence) -> Check:
    """A job that always fails ended dead, in the DLQ, with exactly max_attempts attempts."""
    cap = evidence.max_attempts
    wrong = [
        job_id
        for job_id in sorted(evidence.always_failing)
        if (state := evidence.states.get(job_id)) is None
        or state.state != DEAD
        or state.attempts != cap
        or evidence.dead_rows.get(job_id) != cap
    ]
    figure = (
        f"{len(evidence.always_failing) - len(wrong)} of {len(evidence.always_failing)} "
        f"always-failing jobs dead after exactly {cap} attempts"
    )
    details = {"jobs": len(evidence.always_failing), "wrong": len(wrong), "sample": _sample(wrong)}
    return Check(f"always-failing jobs dead at the cap ({cap})", not wrong, figure, details)


def duplicates_by_job(evidence: Evidence) -> dict[str, int]:
    """Return each job's duplicate executions (only jobs that have any)."""
    effective = Counter(each.job_id for each in evidence.executions if not each.fails)
    found = {}
    for job_id, count in effective.items():
        state = evidence.states.get(job_id)
        needed = 0 if state is not None and state.state == DEAD else 1
        if count > needed:
            found[job_id] = count - needed
    return found


def check_duplicates(evidence: Evidence) -> Check:
    """Duplicates are no more than the jobs in flight at the kills, job by job."""
    duplicates = duplicates_by_job(evidence)
    caught = Counter(job_id for kill in evidence.kills for job_id in kill.in_flight)
    unexplained = {
        job_id: extra - caught[job_id]
        for job_id, extra in duplicates.items()
        if extra > caught[job_id]
    }
    total, in_flight = sum(duplicates.values()), sum(caught.values())
    on_killed = _ran_on_a_killed_worker(evidence, set(unexplained))
    figure = (
        f"{total} duplicate executions <= {in_flight} jobs in flight at the kills; "
        f"{sum(unexplained.values())} unexplained"
    )
    if unexplained:
        figure += (
            f" ({len(on_killed)} of their {len(unexplained)} jobs had run on a killed worker "
            "whose snapshot missed them; the others' leases expired on live workers)"
        )
    details = {
        "duplicates": total,
        "in_flight_at_kills": in_flight,
        "unexplained": sum(unexplained.values()),
        "unexplained_jobs_run_on_a_killed_worker": len(on_killed),
        "unexplained_sample": _sample(unexplained),
    }
    return Check("duplicates only from kills", not unexplained, figure, details)


def _ran_on_a_killed_worker(evidence: Evidence, jobs: set[str]) -> set[str]:
    """Return the `jobs` that started on a worker before that worker was killed."""
    killed_at = {kill.pid: kill.at for kill in evidence.kills}
    return {
        each.job_id
        for each in evidence.executions
        if each.job_id in jobs and each.started_at < killed_at.get(each.pid, -math.inf)
    }


def redelivery_times(evidence: Evidence) -> list[float]:
    """Return, per job in flight at a kill, seconds from the kill to its next start."""
    starts: dict[str, list[float]] = {}
    for each in evidence.executions:
        starts.setdefault(each.job_id, []).append(each.started_at)
    times = []
    for kill in evidence.kills:
        for job_id in kill.in_flight:
            later = [at for at in starts.get(job_id, []) if at > kill.at]
            if later:
                times.append(min(later) - kill.at)
    return times


def check_redelivered(evidence: Evidence) -> Check:
    """Each job in flight at a kill ran again after it, or died (that was its last attempt)."""
    starts: dict[str, float] = {}
    for each in evidence.executions:
        starts[each.job_id] = max(each.started_at, starts.get(each.job_id, each.started_at))
    missing = [
        job_id
        for kill in evidence.kills
        for job_id in kill.in_flight
        if starts.get(job_id, -math.inf) <= kill.at
        and (job_id not in evidence.states or evidence.states[job_id].state != DEAD)
    ]
    caught = sum(len(kill.in_flight) for kill in evidence.kills)
    figure = (
        f"{caught - len(missing)} of {caught} jobs in flight at {len(evidence.kills)} kills "
        "ran again (or died on their last attempt)"
    )
    details = {"in_flight": caught, "missing": len(missing), "sample": _sample(missing)}
    return Check("killed deliveries redelivered", not missing, figure, details)


def check_audit(evidence: Evidence) -> Check:
    """The audit log agrees with the final states, and a dead job has its DLQ row."""
    wrong_last = [
        job_id
        for job_id, final in evidence.states.items()
        if final.state in TERMINAL and evidence.last_audit.get(job_id) != final.state
    ]
    no_dead_row = [
        job_id
        for job_id, final in evidence.states.items()
        if final.state == DEAD and job_id not in evidence.dead_rows
    ]
    stray_dead_row = [
        job_id
        for job_id in evidence.dead_rows
        if job_id not in evidence.states or evidence.states[job_id].state != DEAD
    ]
    bad = len(wrong_last) + len(no_dead_row) + len(stray_dead_row)
    figure = (
        f"{len(wrong_last)} terminal states whose last audit event differs, "
        f"{len(no_dead_row)} dead jobs without a DLQ row, "
        f"{len(stray_dead_row)} DLQ rows of jobs not dead"
    )
    details = {
        "last_event_differs": len(wrong_last),
        "dead_without_dlq_row": len(no_dead_row),
        "dlq_row_not_dead": len(stray_dead_row),
        "sample": _sample(wrong_last + no_dead_row + stray_dead_row),
    }
    return Check("audit log agrees with final states", bad == 0, figure, details)


def check_memory_bounded(samples: Sequence[MemorySample], payload_bytes: int) -> Check:
    """While the DLQ grows, Redis memory stays flat: it does not keep the dead jobs.

    The first quarter of the samples is the warm-up (the live set filling); the rest
    is split in halves, and the median `used_memory` of the second half may exceed the
    first half's by at most `MEMORY_GROWTH_TOLERANCE` of what the jobs that died in
    between would occupy if Redis kept their payloads. A queue that leaked dead jobs
    (or their retries) grows by all of that, and more.
    """
    steady = samples[len(samples) // 4 :]
    name = "Redis memory flat while the DLQ grows"
    if len(steady) < 4:  # noqa: PLR2004 - two samples per half at least
        return Check(name, passed=False, figure=f"too few samples ({len(samples)})")
    middle = len(steady) // 2
    first, second = steady[:middle], steady[middle:]
    growth = _median([each.used_memory for each in second]) - _median(
        [each.used_memory for each in first]
    )
    added = second[len(second) // 2].dead_rows - first[len(first) // 2].dead_rows
    allowed = MEMORY_GROWTH_TOLERANCE * added * payload_bytes
    figure = (
        f"median used_memory {growth / 2**20:+.2f} MiB while the DLQ grew by {added:,} jobs "
        f"of {payload_bytes:,} B (kept, they would take {added * payload_bytes / 2**20:.1f} MiB)"
    )
    details = {"growth_bytes": growth, "dead_added": added, "allowed_bytes": round(allowed)}
    return Check(name, passed=added > 0 and growth <= allowed, figure=figure, details=details)


def _median(values: Sequence[int]) -> float:
    return percentile(values, 0.5)


def check_run(evidence: Evidence) -> list[Check]:
    """Return every check of the chaos run, in report order."""
    return [
        check_terminal(evidence),
        check_always_failing(evidence),
        check_duplicates(evidence),
        check_redelivered(evidence),
        check_audit(evidence),
    ]
