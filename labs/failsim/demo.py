"""`lab demo failure-sim`: three of the lab's scenarios, quick, in one line of figures.

The AWS backoff simulation (100 contending clients: no jitter against full jitter),
then on the real chain of processes: a total outage of payments under load (how soon
orders' breaker opens, how fast it then refuses) and commit-then-drop faults at
payments (duplicate side effects with and without idempotency keys, read from the
PostgreSQL ledger). The whole set, with the amplification and bulkhead scenarios, is
`lab experiment failure-sim [--full]`; results go to a scratch folder here, not to
the results the README quotes.
"""

from labs.demos import DemoContext, DemoOutcome
from labs.experiments import ExperimentContext, Size
from labs.failsim.experiments.run import run_scenarios
from labs.failsim.experiments.scenario import SCENARIOS, load_scenario

DEMO_SCENARIOS = ("1-backoff-contention", "3-breaker", "5-idempotency")
SEED = 7


async def run(context: DemoContext) -> DemoOutcome:
    """Run the three scenarios at the quick size; proved when every claim is met."""
    experiment = ExperimentContext(
        urls=context.urls,
        size=Size.QUICK,
        seed=SEED,
        results_dir=context.state_dir / "failsim-demo",
        progress=context.progress,
    )
    scenarios = [load_scenario(SCENARIOS / f"{name}.toml") for name in DEMO_SCENARIOS]
    summary = await run_scenarios(experiment, scenarios)
    return DemoOutcome(proved=summary.startswith("all claims met"), summary=summary)
