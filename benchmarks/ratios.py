"""Ratios within one run: how a target compares with its peers on the same machine.

Absolute figures on a shared machine move with whatever else runs; figures taken
minutes apart on the same servers drift together, so comparisons are ratios within
one results file (benchmarks/README.md, "Why ratios").
"""

from collections.abc import Iterable, Mapping
from typing import Any


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """Return `numerator / denominator` to three places (None when either is missing)."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def peer_ratios(ours: str, peers: Iterable[str], runs: Mapping[str, Any]) -> dict[str, Any]:
    """Return the peak run of `ours` over each peer's: throughput and latency ratios.

    Above 1 ours serves more (`rps`) or answers slower (`p50`, `p99`) than the peer.
    """
    mine = runs[ours]
    return {
        peer: {
            "rps": ratio(mine["rps"], runs[peer]["rps"]),
            **{
                q: ratio(mine["latency_ms"][q], runs[peer]["latency_ms"][q]) for q in ("p50", "p99")
            },
        }
        for peer in peers
        if peer in runs
    }
