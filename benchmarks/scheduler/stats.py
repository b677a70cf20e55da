"""From recorded stamps to the figures, ratios and verdicts of a scheduler run (pure).

Every figure comes from stamps taken on one machine's clock (`time.time_ns()`): the
enqueuer's before each `enqueue` call, each job's inside its worker when it started.
`account` proves that every job enqueued started (a benchmark that loses jobs fails
here, loudly, instead of reporting a throughput); duplicates (at-least-once
re-deliveries) are counted and reported. Ratios are taken against the fastest peer
(our variants are not peers), and each goal is judged met or missed with its figure.
"""

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from benchmarks.timing import latency_summary
from labs.errors import LabError

PROCESS_GOAL = 1.5
"""Process throughput, audit on, at least this many times the fastest peer's."""
IDLE_P99_GOAL_MS = 5.0
"""Pickup latency p99 on an idle queue at most this."""
OURS = ("scheduler+audit", "scheduler")
"""Our variants, the judged one (audit on) first."""
_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000


def account(
    system: str, expected: Iterable[int], starts: Mapping[int, Sequence[int]]
) -> dict[str, int]:
    """Count what happened to the `expected` jobs; raise if any never started or a stranger did."""
    wanted = set(expected)
    missing = wanted - starts.keys()
    unexpected = starts.keys() - wanted
    if missing or unexpected:
        raise LabError(
            f"{system}: {len(missing)} of {len(wanted)} jobs never started "
            f"(e.g. {sorted(missing)[:5]}), {len(unexpected)} unknown jobs started: "
            "the run is void"
        )
    return {
        "enqueued": len(wanted),
        "started": len(wanted),
        "duplicates": sum(len(stamps) - 1 for stamps in starts.values()),
    }


def per_second(jobs: int, elapsed_ns: int) -> float | None:
    """Return jobs per second over `elapsed_ns` (None for an empty interval)."""
    return round(jobs * _NS_PER_S / elapsed_ns, 1) if elapsed_ns > 0 else None


def process_throughput(first_starts_ns: Sequence[int], warmup: int) -> dict[str, Any]:
    """Jobs per second once `warmup` jobs have started: the start-up ramp is left out.

    The window runs from the `warmup`-th start to the last one (no-op jobs finish as
    they start), and counts the jobs that started after its beginning.
    """
    ordered = sorted(first_starts_ns)
    if warmup < 1 or len(ordered) <= warmup:
        raise ValueError("need at least one warm-up job and one measured job")
    jobs = len(ordered) - warmup
    elapsed = ordered[-1] - ordered[warmup - 1]
    return {
        "jobs": jobs,
        "warmup_jobs": warmup,
        "seconds": round(elapsed / _NS_PER_S, 3),
        "per_s": per_second(jobs, elapsed),
    }


def cpu_use(shares: Mapping[str, float | None], process: Mapping[str, Any]) -> dict[str, Any]:
    """Worker CPU while the backlog ran: cores used, the machine's load, CPU ms per job.

    On a shared machine the CPU a system spends per job is the figure least moved by
    other work; the machine's share says how contended the run was.
    """
    machine = shares.get("machine")
    workers = [share for name, share in shares.items() if name != "machine"]
    cores = None if not workers or None in workers else round(sum(filter(None, workers)), 2)
    per_job = (
        round(cores * process["seconds"] * 1000 / process["jobs"], 3)
        if cores is not None and process["jobs"]
        else None
    )
    return {"worker_cores": cores, "machine_busy": machine, "worker_cpu_ms_per_job": per_job}


def pickup_ms(enqueued_ns: Mapping[int, int], starts: Mapping[int, Sequence[int]]) -> list[float]:
    """Return each job's enqueue-to-first-start latency in ms."""
    return [(min(starts[index]) - stamp) / _NS_PER_MS for index, stamp in enqueued_ns.items()]


def pickup_summary(latencies_ms: Sequence[float]) -> dict[str, Any]:
    """p50, p95, p99, p99.9, mean and max of pickup latencies, in ms."""
    return {
        "jobs": len(latencies_ms),
        **latency_summary(latencies_ms),
        "max": round(max(latencies_ms), 4) if latencies_ms else None,
    }


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 3) if ours is not None and theirs else None


def _fastest_peer(systems: Mapping[str, Any], figure: str) -> tuple[str | None, float | None]:
    peers = [(name, run[figure]["per_s"]) for name, run in systems.items() if name not in OURS]
    peers = [(name, value) for name, value in peers if value is not None]
    if not peers:
        return None, None
    return max(peers, key=lambda peer: peer[1])


def ratios(systems: Mapping[str, Any]) -> dict[str, Any]:
    """Each system's throughputs over the fastest peer's, per figure."""
    found: dict[str, Any] = {}
    for figure in ("enqueue", "process"):
        peer, best = _fastest_peer(systems, figure)
        found[figure] = {
            "fastest_peer": peer,
            "fastest_peer_per_s": best,
            "vs_fastest_peer": {
                name: _ratio(run[figure]["per_s"], best) for name, run in systems.items()
            },
        }
    return found


def judge(systems: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Judge the goals on our audited variant (or, without it, the unaudited one)."""
    ours = next((name for name in OURS if name in systems), None)
    if ours is None:
        return []
    run = systems[ours]
    peer, best = _fastest_peer(systems, "process")
    throughput = _ratio(run["process"]["per_s"], best)
    idle_p99 = run["pickup_idle_ms"]["p99"]
    return [
        {
            "id": "process-throughput",
            "goal": f"process throughput >= {PROCESS_GOAL}x the fastest peer ({ours})",
            "threshold": PROCESS_GOAL,
            "figure": throughput,
            "met": throughput is not None and throughput >= PROCESS_GOAL,
            "detail": f"{ours} {run['process']['per_s']} jobs/s vs {peer} {best} jobs/s",
        },
        {
            "id": "idle-pickup-p99",
            "goal": f"pickup p99 <= {IDLE_P99_GOAL_MS} ms on an idle queue ({ours})",
            "threshold": IDLE_P99_GOAL_MS,
            "figure": idle_p99,
            "met": idle_p99 is not None and idle_p99 <= IDLE_P99_GOAL_MS,
            "detail": f"p50 {run['pickup_idle_ms']['p50']} ms, p99 {idle_p99} ms over "
            f"{run['pickup_idle_ms']['jobs']} jobs enqueued one at a time",
        },
    ]


def _median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return round(statistics.median(present), 3) if present else None


def summarize(rounds: Sequence[Mapping[str, Any]], loaded_rate: float) -> dict[str, Any]:
    """One system's figures over its rounds: median throughputs, pooled pickup latencies.

    Throughput is a rate per round, so the median of the rounds resists one disturbed
    round; latencies are pooled, so p99 is taken over every job of every round.
    """
    cpu_figures = ("worker_cores", "machine_busy", "worker_cpu_ms_per_job")
    return {
        "jobs": {
            key: sum(one["jobs"][key] for one in rounds)
            for key in ("enqueued", "started", "duplicates")
        },
        "enqueue": {
            "jobs": sum(one["enqueue"]["jobs"] for one in rounds),
            "per_s": _median([one["enqueue"]["per_s"] for one in rounds]),
        },
        "process": {
            "jobs": sum(one["process"]["jobs"] for one in rounds),
            "per_s": _median([one["process"]["per_s"] for one in rounds]),
            "cpu": {
                figure: _median([one["process"]["cpu"][figure] for one in rounds])
                for figure in cpu_figures
            },
        },
        "pickup_idle_ms": pickup_summary([ms for one in rounds for ms in one["idle_ms"]]),
        "pickup_loaded_ms": {
            **pickup_summary([ms for one in rounds for ms in one["loaded_ms"]]),
            "rate_per_s": loaded_rate,
            "reached_per_s": min(
                (one["loaded_reached_per_s"] or 0.0 for one in rounds), default=None
            ),
        },
        "rounds": [
            {
                "enqueue_per_s": one["enqueue"]["per_s"],
                "process_per_s": one["process"]["per_s"],
                "worker_cpu_ms_per_job": one["process"]["cpu"]["worker_cpu_ms_per_job"],
                "idle_p99_ms": pickup_summary(one["idle_ms"])["p99"],
                "loaded_p99_ms": pickup_summary(one["loaded_ms"])["p99"],
            }
            for one in rounds
        ],
    }
