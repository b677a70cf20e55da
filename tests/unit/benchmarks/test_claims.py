"""The claims file: complete, valid, every measurable figure in the committed results."""

from typing import Any

import pytest

from benchmarks.claims import PARTS, Command, Measure, load_claims, parse_claims, resolve
from benchmarks.report import load
from labs.errors import LabError
from labs.paths import project_root

CLAIMS = load_claims()
MEASURABLE = [m for claim in CLAIMS for m in claim.measures if m.status == "measurable"]
ALL_IDS = {
    "rl-standalone-multi-region",
    "rl-clock-independent",
    "rl-tls-l7",
    "idem-six-strategies",
    "idem-consumers",
    "idem-network-retries",
    "sched-at-least-once",
    "sched-redis-postgres",
    "sched-circuit-breaker",
    "sched-max-retries-dlq",
    "sched-deployments",
    "cache-stampede",
    "cache-stale-5s",
    "failsim-platform",
    "failsim-building-for-failure",
    "events-cdc",
    "events-kafka-outbox",
    "events-exactly-once",
    "events-50k-per-s",
    "latency-500-concurrent",
    "latency-sustained-30ms",
    "latency-10k-tps-p99",
    "latency-instrumented",
}


def test_every_claim_is_in_the_file_once_quoted_on_one_line() -> None:
    """All 23 claims of CLAIMS.md (24 quotes), each part covered, each quote one clean line."""
    assert {claim.id for claim in CLAIMS} == ALL_IDS
    assert {claim.part for claim in CLAIMS} == set(PARTS)
    assert sum(len(claim.quote.split(" / ")) for claim in CLAIMS) == 24
    for claim in CLAIMS:
        assert claim.quote == " ".join(claim.quote.split()), claim.id
        assert not claim.quote.startswith('"'), claim.id


@pytest.mark.parametrize("measure", MEASURABLE, ids=lambda m: f"{m.claim}: {m.what[:40]}")
def test_measurable_figures_are_in_the_committed_results(measure: Measure) -> None:
    """Each measurable measure reads a figure of the threshold's kind from the quoted results."""
    assert measure.command is not None
    assert measure.command.registered()
    assert measure.active
    path = latest_match(measure)
    value = measure.value(load(path))
    assert isinstance(value, bool) == isinstance(measure.threshold, bool), (path, value)
    assert value is not None


def latest_match(measure: Measure) -> Any:
    """The newest committed results file the measure reads."""
    assert measure.command is not None
    files = sorted(measure.command.default_dir(project_root()).glob(measure.results or ""))
    assert files, f"no committed {measure.results} for {measure.command.text}"
    return files[-1]


def test_a_waiting_measure_turns_on_exactly_when_its_command_is_registered() -> None:
    """`not yet` with a command: active iff registered; without one: never active."""
    waiting = [m for claim in CLAIMS for m in claim.measures if m.status == "not yet"]
    assert waiting
    for measure in waiting:
        assert measure.why
        expected = measure.command is not None and measure.command.registered()
        assert measure.active is expected, measure.what


DOCUMENT = {
    "results": {
        "runs": {"a@half-peak": {"latency_ms": {"p99.9": 3.5, "p99": 2.0}}},
        "cells": [
            {"mode": "strict", "pct": 0.0},
            {"mode": "local", "pct": 190.0},
            {"mode": "strict", "pct": 1.5},
        ],
        "checks": [{"name": "every job succeeded or dead", "details": {"lost": 0}}],
        "strategies": ["a", "b", "c"],
    }
}


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ('results.runs."a@half-peak".latency_ms."p99.9"', [3.5]),
        ("results.cells[mode=strict].pct", [0.0, 1.5]),
        ("results.cells[*].mode", ["strict", "local", "strict"]),
        ("results.cells[1].pct", [190.0]),
        ("results.checks[name=every job succeeded or dead].details.lost", [0]),
        ("results.missing.key", []),
        ("results.cells[mode=none].pct", []),
    ],
)
def test_metric_paths_reach_keys_items_and_filtered_records(path: str, found: list[Any]) -> None:
    """Dots, quoted keys, indexes, wildcards and field filters fan out as documented."""
    assert resolve(DOCUMENT, path) == found


def measure(metric: str, **fields: Any) -> Measure:
    """A measure reading `metric`, compared `<= 1` unless told otherwise."""
    command = Command.parse("lab experiment x")
    defaults: dict[str, Any] = {"compare": "<=", "threshold": 1, "results": "x.json"}
    return Measure("c", "w", "measurable", command, metric=metric, **(defaults | fields))


def test_aggregates_combine_several_matches_and_count_a_list() -> None:
    """Max over filtered records; count of a list; several matches without one: missing."""
    assert measure("results.cells[mode=strict].pct", aggregate="max").value(DOCUMENT) == 1.5
    assert measure("results.strategies", aggregate="count").value(DOCUMENT) == 3
    assert measure("results.cells[*]", aggregate="count").value(DOCUMENT) == 3
    with pytest.raises(LookupError):
        measure("results.cells[mode=strict].pct").value(DOCUMENT)
    with pytest.raises(LookupError):
        measure("results.nothing", aggregate="count").value(DOCUMENT)


@pytest.mark.parametrize(
    ("value", "threshold", "compare", "met"),
    [
        (0.8, 0.8, "<=", True),
        (0.81, 0.8, "<=", False),
        (200, 200, "<", False),
        (True, True, "==", True),
        (False, True, "==", False),
        (None, 0, "==", False),  # nothing measured is never met
        (1, True, "==", False),  # a number is not a verdict
        ("0", 0, "==", False),
    ],
)
def test_a_figure_meets_its_threshold_only_when_it_is_one(
    value: Any,
    threshold: Any,
    compare: str,
    met: bool,  # noqa: FBT001 - a parametrized expectation
) -> None:
    """Comparisons at the boundary, and missing or mistyped figures never met."""
    assert measure("x", threshold=threshold, compare=compare).met(value) is met


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "maybe"}, "status must be one of"),
        ({"status": "not yet"}, "says why"),
        ({"compare": "~"}, "compare must be one of"),
        ({"metric": None}, "needs metric"),
        ({"command": "make bench"}, "is not `lab experiment"),
        ({"colour": "red"}, "unknown field"),
    ],
)
def test_a_malformed_measure_is_refused_in_one_line(change: dict[str, Any], message: str) -> None:
    """Each mistake names the claim and what to fix."""
    raw = {
        "what": "w",
        "status": "measurable",
        "command": "lab bench rate-limiter",
        "results": "r/*.json",
        "metric": "results.x",
        "compare": "<",
        "threshold": 1,
    }
    raw = {key: value for key, value in (raw | change).items() if value is not None}
    document = {
        "schema": 1,
        "claims": [{"id": "c", "part": "latency", "quote": "q", "measures": [raw]}],
    }
    with pytest.raises(LabError, match=message) as caught:
        parse_claims(document)
    assert "\n" not in str(caught.value)
