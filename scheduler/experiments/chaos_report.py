"""The chaos experiment's outputs: the summary line, the results file and the plot.

Nothing here runs anything: each function turns a judged `Report` into what a reader
checks the claims against, so a summary, `chaos.json` and `chaos.png` always agree.
"""

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from labs.results import machine
from scheduler.domain import DEFAULT_MAX_ATTEMPTS
from scheduler.experiments.chaos_plan import (
    DLQ_PAYLOAD_BYTES,
    MIX,
    RETRY_BASE_MS,
    RETRY_CAP_MS,
    Report,
)
from scheduler.experiments.checker import MemorySample


def summarize(report: Report) -> str:
    """One line: the verdict and the figures a reader checks the claims against."""
    by_name = {check.name: check for check in report.checks}
    terminal = by_name["every job succeeded or dead"].details
    duplicates = by_name["duplicates only from kills"].details
    memory = by_name.get("Redis memory flat while the DLQ grows")
    p99 = report.redelivery.p99_s
    failed = [check.name for check in report.checks if not check.passed]
    verdict = "PASSED" if not failed else f"FAILED ({'; '.join(failed)})"
    plan = report.plan
    lost = terminal["lost"]
    return (
        f"{verdict}: {terminal['jobs']:,} jobs, {len(report.timeline.kills)} SIGKILLs and a "
        f"rolling restart of {plan.workers} workers: {terminal['succeeded']:,} succeeded, "
        f"{terminal['dead']:,} dead, {lost} lost"
        + (f" ({terminal['lost_on_killed_worker']} last ran on a killed worker)" if lost else "")
        + f", {terminal['stuck']} stuck; {duplicates['duplicates']} duplicates <= "
        f"{duplicates['in_flight_at_kills']} in flight at the kills; redelivery p99 "
        + ("n/a" if p99 is None else f"{p99:.2f} s")
        + f" (lease {plan.lease_ms / 1000:g} s)"
        + ("" if memory is None else f"; {memory.figure}")
    )


def _series(samples: Sequence[MemorySample], since: float) -> list[dict[str, Any]]:
    return [
        {
            "t_s": round(each.at - since, 2),
            "used_memory": each.used_memory,
            "dlq_rows": each.dead_rows,
        }
        for each in samples
    ]


def payload(report: Report) -> dict[str, Any]:
    """Return the results file's content."""
    since = report.started_at
    timeline = report.timeline
    return {
        "claim": (
            "at-least-once delivery, no job lost to SIGKILLs or a rolling restart, at most "
            f"{DEFAULT_MAX_ATTEMPTS} attempts then a PostgreSQL DLQ, Redis memory flat while "
            "the DLQ grows"
        ),
        "plan": asdict(report.plan),
        "mix": MIX,
        "retry": {"base_ms": RETRY_BASE_MS, "cap_ms": RETRY_CAP_MS},
        "passed": report.passed,
        "summary": summarize(report),
        "checks": [asdict(check) for check in report.checks],
        "redelivery": asdict(report.redelivery),
        "redelivery_times_s": sorted(round(each, 3) for each in report.redelivery_times),
        "executions": len(timeline.executions),
        "kills": [
            {
                "t_s": round(kill.at - since, 2),
                "worker": kill.worker,
                "in_flight": len(kill.in_flight),
            }
            for kill in timeline.kills
        ],
        "rolling_restart": [
            asdict(restart) | {"at": round(restart.at - since, 2)} for restart in timeline.restarts
        ],
        "memory": {
            "chaos_phase": _series(timeline.chaos_memory, since),
            "dlq_phase": _series(timeline.dlq_memory, since),
        },
        "seconds": round(report.seconds, 1),
    }


def plot(report: Report, path: Path) -> None:
    """Draw the redelivery times, and Redis memory against the DLQ in both phases."""
    import matplotlib as mpl  # noqa: PLC0415 - only the experiment plots; workers never import it

    mpl.use("Agg")
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(13, 4.6))
    redelivery, chaos_axes, dlq_axes = figure.subplots(1, 3)
    _plot_redelivery(redelivery, report)
    _plot_memory(chaos_axes, report.timeline.chaos_memory, report, "Chaos phase")
    for kill in report.timeline.kills:
        chaos_axes.axvline(kill.at - report.started_at, color="tab:red", linewidth=0.8, alpha=0.6)
    for restart in report.timeline.restarts:
        chaos_axes.axvline(
            restart.at - report.started_at, color="tab:green", linewidth=0.8, alpha=0.6
        )
    _plot_memory(
        dlq_axes, report.timeline.dlq_memory, report, "DLQ phase: a downstream down for good"
    )
    _plot_if_kept(dlq_axes, report.timeline.dlq_memory, report.started_at)
    info = machine()
    verdict = (
        "all checks passed"
        if report.passed
        else "FAILED checks: "
        + "; ".join(check.name for check in report.checks if not check.passed)
    )
    caption = (
        f"{report.plan.name} run: {report.plan.describe()}; {verdict}. Red lines: SIGKILLs, "
        f"green: rolling restart. Machine: {info['cpu']}, {info['cores']} cores, {info['os']}"
    )
    figure.text(0.01, 0.01, caption, fontsize=7, color="gray", wrap=True)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=120)


def _plot_redelivery(axes: Any, report: Report) -> None:
    times = report.redelivery_times
    axes.hist(times, bins=30, color="tab:blue")
    axes.axvline(report.plan.lease_ms / 1000, color="black", linestyle="--", label="lease")
    if report.redelivery.p99_s is not None:
        axes.axvline(
            report.redelivery.p99_s, color="tab:red", label=f"p99 {report.redelivery.p99_s:.2f} s"
        )
    axes.set(
        xlabel="seconds from the kill to the next start",
        ylabel="jobs in flight at a kill",
        title=f"Redelivery after SIGKILL ({len(times)} jobs)",
    )
    axes.legend(fontsize=8)


def _plot_if_kept(axes: Any, samples: Sequence[MemorySample], since: float) -> None:
    """Draw what `used_memory` would be if Redis kept each dead job's payload."""
    if not samples:
        return
    first = samples[0]
    kept = [
        (first.used_memory + (each.dead_rows - first.dead_rows) * DLQ_PAYLOAD_BYTES) / 2**20
        for each in samples
    ]
    axes.plot(
        [each.at - since for each in samples],
        kept,
        color="tab:blue",
        linestyle=":",
        label="if Redis kept the dead jobs' payloads",
    )
    axes.set_ylim(0, max(kept) * 1.05)
    axes.legend(fontsize=7, loc="upper left")


def _plot_memory(axes: Any, samples: Sequence[MemorySample], report: Report, title: str) -> None:
    seconds = [each.at - report.started_at for each in samples]
    used = [each.used_memory / 2**20 for each in samples]
    axes.plot(seconds, used, color="tab:blue", label="Redis used_memory")
    axes.set(xlabel="seconds into the run", title=title)
    axes.set_ylabel("Redis used_memory (MiB)", color="tab:blue")
    axes.set_ylim(bottom=0)
    rows = axes.twinx()
    rows.plot(seconds, [each.dead_rows for each in samples], color="tab:orange")
    rows.set_ylabel("rows in the PostgreSQL DLQ", color="tab:orange")
    rows.set_ylim(bottom=0)
