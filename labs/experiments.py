"""Experiments: the runs that measure a claim and write a results file (and a plot).

An experiment is an async function taking an `ExperimentContext` and returning a
one-line summary that states the measured figure next to the claim. It has two
sizes: `quick` (what tests and `lab demo` use, seconds) and `full` (what the README
quotes). `lab experiment <name> [--full]` runs one; issues add theirs to
`EXPERIMENTS`. Results go to the lab's own `results/` folder unless told otherwise.
"""

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from labs.imports import LazyEntry
from labs.settings import ServerUrls


class Size(StrEnum):
    """How big a run is."""

    QUICK = "quick"
    FULL = "full"


@dataclass(frozen=True)
class ExperimentContext:
    """What an experiment gets: servers, size, seed, where to write, a progress callback."""

    urls: ServerUrls
    size: Size
    seed: int
    results_dir: Path
    progress: Callable[[str], None]


ExperimentFunction = Callable[[ExperimentContext], Coroutine[Any, Any, str]]


@dataclass(frozen=True)
class Experiment(LazyEntry[ExperimentFunction]):
    """An experiment, named for `lab experiment <name>`, imported only when it runs."""

    results: str
    """Where it writes its results file and plot, from the project root."""


EXPERIMENTS: dict[str, Experiment] = {
    experiment.name: experiment
    for experiment in (
        Experiment(
            "clock-skew",
            "rate_limiter.experiments.clock_skew:run",
            "five token-bucket-family limiters under 0, 50 and 200 ms of client clock skew",
            "rate_limiter/results",
        ),
        Experiment(
            "sliding-window",
            "rate_limiter.experiments.sliding_window:run",
            "the sliding-window approximation's error against the exact sliding log",
            "rate_limiter/results",
        ),
        Experiment(
            "multi-region",
            "rate_limiter.experiments.multi_region:run",
            "three regions sharing a limit: local, strict and eventual modes across delays",
            "rate_limiter/results",
        ),
        Experiment(
            "chaos",
            "scheduler.experiments.chaos:run",
            "scheduler workers SIGKILLed and restarted under load: none lost, duplicates bounded",
            "scheduler/results",
        ),
        Experiment(
            "failure-sim",
            "labs.failsim.experiments.run:run",
            "faults on a chain of services against retries, budgets, breakers, bulkheads, keys",
            "labs/failsim/results",
        ),
    )
}
