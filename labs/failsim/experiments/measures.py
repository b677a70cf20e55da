"""Turning a run's samples and counts into the figures the claims are checked against."""

import statistics
from collections.abc import Sequence
from typing import Any

from labs.failsim.chain.stats import HopStats
from labs.failsim.experiments.driver import Sample
from labs.failsim.experiments.scenario import Claim


def quantile(values: Sequence[float], q: float) -> float | None:
    """Return the `q`-quantile (0 < q < 1, inclusive method) of `values`, None if empty."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def latency(samples: Sequence[Sample], prefix: str = "") -> dict[str, Any]:
    """Success rate, p50 and p99 (ms, all requests) of `samples`, names prefixed."""
    times = [sample.latency_ms for sample in samples]
    return {
        f"{prefix}requests": len(samples),
        f"{prefix}success_rate": _ratio(sum(s.ok for s in samples), len(samples)),
        f"{prefix}p50_ms": _round(quantile(times, 0.5)),
        f"{prefix}p99_ms": _round(quantile(times, 0.99)),
    }


def chain_counts(stats: dict[str, HopStats], route: Sequence[str], requests: int) -> dict[str, Any]:
    """Calls per request at each hop of `route`, refusals per edge, and duplicate side effects."""
    effects = sum(hop.side_effects for hop in stats.values())
    distinct = sum(hop.distinct_requests for hop in stats.values())
    return {
        "calls_per_request": {hop: _ratio(stats[hop].received, requests) for hop in route},
        "rejected": {
            f"{name}->{dependency}": edge.rejected
            for name, hop in stats.items()
            for dependency, edge in hop.edges.items()
            if edge.rejected
        },
        "side_effects": effects,
        "duplicates": effects - distinct,
        "duplicates_per_request": _ratio(effects - distinct, requests),
    }


def figure(results: list[dict[str, Any]], metric: str, variant: str, x: float | None) -> Any:
    """Return `metric` (a dotted path) of the run of `variant` at `x`, or None."""
    for run in results:
        if run["variant"] == variant and run.get("x") == x:
            value: Any = run
            for part in metric.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            return value
    return None


def check(claim: Claim, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the claim with its measured figure and whether the figure meets it."""
    value = figure(results, claim.metric, claim.variant, claim.x)
    if claim.over is not None and value is not None:
        base = figure(results, claim.metric, claim.over, claim.x)
        value = None if not base else value / base
    met = value is not None
    if met and claim.at_least is not None:
        met = value >= claim.at_least
    if met and claim.at_most is not None:
        met = value <= claim.at_most
    return claim.model_dump() | {"figure": _round(value), "met": met}


def _ratio(part: float, whole: float) -> float | None:
    return None if not whole else round(part / whole, 4)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
