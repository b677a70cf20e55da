"""The report's pages: one per lab, naming its benchmark targets, experiments and tables.

A page shows every results file its targets and experiments have written (a lab with
none says so and names the command that will). `Matrix` turns a list of records in a
results file into a table, one row per record group and one column per value of a
field: the clock-skew error by implementation and skew, the multi-region
over-admission by mode and delay. A lab that lands adds its entry, or its targets and
experiments to an existing one.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Matrix:
    """A table from a list of records: rows by `row` fields, columns by `column`."""

    results: str
    """The results file's name (without `.json`) this matrix is drawn from."""
    records: str
    """Metric path of the list of records (see benchmarks/claims.py)."""
    row: tuple[str, ...]
    column: str | None
    """None: one column per `values` field instead."""
    values: tuple[str, ...]
    title: str


@dataclass(frozen=True)
class LabPage:
    """One page of the report."""

    slug: str
    title: str
    part: str
    """The claims file's part whose claims this page shows."""
    summary: str
    benches: tuple[str, ...] = ()
    experiments: tuple[str, ...] = ()
    matrices: tuple[Matrix, ...] = ()


LABS = (
    LabPage(
        "rate-limiter",
        "Rate limiter",
        "rate-limiter",
        "Token bucket, GCRA, sliding log, sliding window and fixed window in one Lua script "
        "on Redis server time, as a service; multi-region modes.",
        benches=("rate-limiter", "rate-limiter-500"),
        experiments=("clock-skew", "sliding-window", "multi-region"),
        matrices=(
            Matrix(
                "clock-skew",
                "results.table",
                ("label",),
                "skew_ms",
                ("error_pct_mean",),
                "Admitted against the exact allowance, % (mean of the repetitions), by skew (ms)",
            ),
            Matrix(
                "multi-region",
                "results.cells",
                ("mode", "sync_ms"),
                "delay_ms",
                ("over_admission_pct",),
                "Admitted beyond the shared limit, % of the allowance, by one-way delay (ms); "
                "eventual mode by sync interval (ms)",
            ),
            Matrix(
                "sliding-window-error",
                "results.rows",
                ("pattern",),
                None,
                (
                    "admitted",
                    "exact_admitted",
                    "worst_window",
                    "exact_worst_window",
                    "overshoot_pct",
                ),
                "The two-counter sliding window against the exact sliding log, 2x overload",
            ),
        ),
    ),
    LabPage(
        "scheduler",
        "Scheduler",
        "scheduler",
        "At-least-once jobs on a Redis queue with leases, backoff, a 5-attempt cap, a "
        "PostgreSQL audit log and DLQ, and circuit breakers per webhook host.",
        benches=("scheduler",),
        experiments=("chaos",),
    ),
    LabPage(
        "idempotency",
        "Idempotency",
        "idempotency",
        "Six idempotency strategies for a payments API, compared under retries.",
        benches=("idempotency",),
    ),
    LabPage(
        "cache",
        "Cache stampede",
        "cache",
        "Cache-aside with jittered TTLs and a caching mutex; bounded staleness.",
        experiments=("cache-stampede",),
    ),
    LabPage(
        "failure-sim",
        "Failure simulation",
        "failure-sim",
        "Retries, circuit breakers, bulkheads and idempotency under injected failures.",
        experiments=("failure-sim",),
    ),
    LabPage(
        "events",
        "Events",
        "events",
        "Outbox and CDC into Kafka, projections with replay, exactly-once effects.",
        experiments=("events",),
    ),
)
