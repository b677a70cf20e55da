"""`lab experiment failure-sim`: every scenario file, its claims checked, results and a plot each.

For each file in `labs/failsim/scenarios/` (a figure each): a contention scenario runs
the simulation (`labs.failsim.simulation`); a chain scenario runs each variant (at
each sweep value) on one chain of real processes, started once for the experiment on
a PostgreSQL schema of its own. Each scenario writes `<name>.json` (every run's
figures, and each claim with its figure and met/missed) and `<name>.png`. The summary
line lists every claim's figure.

Quick size (tests and the demo): fewer requests, fewer sweep values, the bulkhead's
slow dependency at 2 s instead of 10 s. Full size: what the README quotes.
"""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from labs.experiments import ExperimentContext, Size
from labs.failsim.chain.processes import running_chain
from labs.failsim.config import EdgePolicy
from labs.failsim.experiments import plots
from labs.failsim.experiments.driver import CLIENT, ChainDriver, Sample, driving, edge
from labs.failsim.experiments.measures import chain_counts, check, latency, quantile
from labs.failsim.experiments.scenario import (
    ChainScenario,
    ContentionScenario,
    Load,
    Variant,
    all_scenarios,
)
from labs.failsim.policies import Backoff
from labs.failsim.simulation import Network, average, contend
from labs.faults import Faults
from labs.results import save_results
from labs.settings import ServerUrls

NAME = "failure-sim"


@dataclass(frozen=True)
class Outcome:
    """One scenario's runs and checked claims."""

    scenario: ContentionScenario | ChainScenario
    runs: list[dict[str, Any]]
    claims: list[dict[str, Any]]


async def run(context: ExperimentContext) -> str:
    """Run every scenario at the context's size; write results and plots; return the claims."""
    return await run_scenarios(context, all_scenarios())


async def run_scenarios(
    context: ExperimentContext, scenarios: list[ContentionScenario | ChainScenario]
) -> str:
    """Run `scenarios`, writing each one's results file and plot; return the summary line."""
    outcomes = [
        _checked(scenario, simulate(scenario, context))
        for scenario in scenarios
        if isinstance(scenario, ContentionScenario)
    ]
    chains = [each for each in scenarios if isinstance(each, ChainScenario)]
    if chains:
        async with _chain(context.urls, context.seed) as driver:
            for scenario in chains:
                context.progress(f"{scenario.name}: {scenario.title}")
                outcomes.append(_checked(scenario, await drive(scenario, driver, context)))
    for outcome in outcomes:
        _save(outcome, context)
    return summarize(outcomes)


def simulate(scenario: ContentionScenario, context: ExperimentContext) -> list[dict[str, Any]]:
    """Run the contention simulation for each jitter and client count."""
    size = scenario.sizes[context.size]
    network = Network(scenario.network_mean_ms / 1000, scenario.network_sd_ms / 1000)
    runs = []
    for jitter in scenario.jitters:
        backoff = Backoff(jitter, scenario.base_ms / 1000, scenario.cap_ms / 1000)
        for clients in size.clients:
            result = average(size.trials, partial(contend, clients, backoff, network), context.seed)
            runs.append(
                {
                    "variant": str(jitter),
                    "x": clients,
                    "calls": result.calls,
                    "completion_ms": round(result.completion_s * 1000, 1),
                }
            )
        context.progress(f"backoff simulation: {jitter} jitter done")
    return runs


async def drive(
    scenario: ChainScenario, driver: ChainDriver, context: ExperimentContext
) -> list[dict[str, Any]]:
    """Run each variant (at each sweep value) of `scenario` on the chain."""
    load = {Load.CLOSED: _closed, Load.OUTAGE: _outage, Load.NEIGHBOUR: _neighbour}[scenario.load]
    runs = []
    for x in scenario.sweep_values(context.size):
        for variant in scenario.variants:
            started = time.monotonic()
            figures = await load(scenario, variant, x, driver, context.size)
            runs.append({"variant": variant.label, "x": x} | figures)
            at = "" if x is None else f" at {scenario.sweep.fault if scenario.sweep else ''}={x}"
            context.progress(
                f"  {variant.label}{at}: {_brief(figures)} ({time.monotonic() - started:.1f} s)"
            )
    return runs


def _faults(scenario: ChainScenario, variant: Variant, x: float | None) -> dict[str, Faults]:
    faults = dict(variant.faults)
    if scenario.sweep is not None and x is not None:
        hop = scenario.sweep.hop
        faults[hop] = (faults.get(hop) or Faults()).model_copy(update={scenario.sweep.fault: x})
    return faults


def _client_policy(variant: Variant, first_hop: str) -> EdgePolicy:
    return variant.edges.get(edge(CLIENT, first_hop), EdgePolicy())


async def _closed(
    scenario: ChainScenario, variant: Variant, x: float | None, driver: ChainDriver, size: Size
) -> dict[str, Any]:
    plan = scenario.sizes[size]
    await driver.prepare(_faults(scenario, variant, x), variant.edges)
    client = driver.client(scenario.route[0], _client_policy(variant, scenario.route[0]))
    deadline_s = scenario.deadline_ms / 1000
    samples = await driver.closed(
        client, scenario.route, deadline_s, plan.requests, plan.concurrency
    )
    counts = chain_counts(await driver.stats(), scenario.route, len(samples))
    return latency(samples) | counts


async def _outage(
    scenario: ChainScenario, variant: Variant, x: float | None, driver: ChainDriver, size: Size
) -> dict[str, Any]:
    plan = scenario.sizes[size]
    outage_hop = scenario.need("outage_hop")
    faults = _faults(scenario, variant, x)
    await driver.prepare(faults, variant.edges)
    client = driver.client(scenario.route[0], _client_policy(variant, scenario.route[0]))
    deadline_s = scenario.deadline_ms / 1000
    load = asyncio.create_task(
        driver.for_duration(client, scenario.route, deadline_s, plan.concurrency, plan.duration_s)
    )
    await asyncio.sleep(plan.outage_at_s)
    outage_at = time.time()
    down = (faults.get(outage_hop) or Faults()).model_copy(update={"outage": True})
    await driver.set_faults(outage_hop, down)
    samples = await load
    stats = await driver.stats()
    caller, dependency = scenario.need("breaker_edge").split("->")
    watched = stats[caller].edges[dependency]
    opened = [t.at for t in watched.transitions if t.state == "open" and t.at >= outage_at]
    opened_at = opened[0] if opened else None
    after = [s for s in samples if opened_at is not None and s.at >= opened_at]
    return (
        latency([s for s in samples if s.at < outage_at], "before_")
        | latency(after, "open_")
        | {
            "breaker_open_after_s": None if opened_at is None else round(opened_at - outage_at, 4),
            "fail_fast_p50_ms": quantile(watched.fail_fast_ms, 0.5),
            "fail_fast_p99_ms": quantile(watched.fail_fast_ms, 0.99),
            "fail_fast_calls": len(watched.fail_fast_ms),
            "transitions": [(t.state, round(t.at - outage_at, 3)) for t in watched.transitions],
            "timeline": _timeline(samples, outage_at),
        }
        | chain_counts(stats, scenario.route, len(samples))
    )


async def _neighbour(
    scenario: ChainScenario, variant: Variant, x: float | None, driver: ChainDriver, size: Size
) -> dict[str, Any]:
    plan = scenario.sizes[size]
    faults = _faults(scenario, variant, x)
    if variant.slow:
        faults[scenario.need("slow_hop")] = Faults(latency_ms=plan.slow_ms)
    await driver.prepare(faults, variant.edges)
    policy = _client_policy(variant, scenario.route[0])
    slow = driver.open_loop(
        driver.client(scenario.slow_route[0], policy),
        scenario.slow_route,
        scenario.slow_deadline_ms / 1000,
        plan.slow_rate_per_s,
        plan.duration_s,
    )
    measured = driver.for_duration(
        driver.client(scenario.route[0], policy),
        scenario.route,
        scenario.deadline_ms / 1000,
        plan.concurrency,
        plan.duration_s,
    )
    started = time.time()
    slow_samples, samples = await asyncio.gather(slow, measured)
    steady = [s for s in samples if s.at >= started + plan.slow_ms / 1000]
    return (
        latency(steady, "neighbour_")
        | latency(slow_samples, "slow_")
        | {
            "slow_outcomes": _outcomes(slow_samples),
            "neighbour_outcomes": _outcomes(steady),
        }
    )


def _outcomes(samples: list[Sample]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sample in samples:
        counts[sample.outcome] = counts.get(sample.outcome, 0) + 1
    return counts


def _timeline(samples: list[Sample], since: float, step_s: float = 0.1) -> list[dict[str, Any]]:
    """Requests per `step_s` bucket (time from the outage), by outcome."""
    buckets: dict[float, dict[str, int]] = {}
    for sample in samples:
        at = round((sample.at - since) // step_s * step_s, 3)
        bucket = buckets.setdefault(at, {})
        bucket[sample.outcome] = bucket.get(sample.outcome, 0) + 1
    return [{"t_s": at, **buckets[at]} for at in sorted(buckets)]


def _brief(figures: dict[str, Any]) -> str:
    keys = (
        "success_rate",
        "calls_per_request",
        "duplicates",
        "breaker_open_after_s",
        "fail_fast_p99_ms",
        "neighbour_p99_ms",
    )
    return ", ".join(f"{key} {figures[key]}" for key in keys if key in figures)


def _checked(scenario: ContentionScenario | ChainScenario, runs: list[dict[str, Any]]) -> Outcome:
    return Outcome(scenario, runs, [check(claim, runs) for claim in scenario.claims])


def _save(outcome: Outcome, context: ExperimentContext) -> None:
    scenario = outcome.scenario
    payload = {
        "title": scenario.title,
        "scenario": scenario.model_dump(mode="json"),
        "claims": outcome.claims,
        "runs": outcome.runs,
    }
    save_results(
        context.results_dir,
        scenario.name,
        payload,
        size=context.size,
        seed=context.seed,
        caveat="measured on a shared, loaded 2-core machine: timings are noisy",
    )
    plots.draw(scenario, outcome.runs, outcome.claims, context.results_dir / f"{scenario.name}.png")


def summarize(outcomes: list[Outcome]) -> str:
    """One line: each claim's figure and whether it was met."""
    claims = [claim for outcome in outcomes for claim in outcome.claims]
    missed = sum(not claim["met"] for claim in claims)
    verdict = "all claims met" if not missed else f"{missed} of {len(claims)} claims MISSED"
    figures = "; ".join(
        f"{claim['text']}: {claim['figure']} ({'met' if claim['met'] else 'MISSED'})"
        for claim in claims
    )
    return f"{verdict}: {figures}"


@contextlib.asynccontextmanager
async def _chain(urls: ServerUrls, seed: int) -> AsyncIterator[ChainDriver]:
    """Start the chain for the experiment; yield a driver of it."""
    async with running_chain(urls, uuid.uuid4().hex, seed) as chain, driving(chain) as driver:
        yield driver
