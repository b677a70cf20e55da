"""`lab demo scheduler`: the chaos experiment, short — workers SIGKILLed and restarted.

Two real worker processes run 2,000 jobs (noops, short sleeps, flaky and
always-failing ones) while two of them are SIGKILLed at random moments and replaced,
then both are restarted in turn with SIGTERM (a rolling deployment). The checker
(`scheduler.experiments.checker`) then proves, from an execution ledger the handlers
write and from PostgreSQL, that every job ended succeeded or dead, that duplicates are
no more than the jobs in flight at the kills, and that the audit log agrees; it
measures how long a killed worker's jobs took to run again. The full experiment, with
100,000 jobs and the bounded-memory phase, is `lab experiment chaos --full`.
"""

from labs.demos import DemoContext, DemoOutcome
from scheduler.experiments.chaos import execute
from scheduler.experiments.chaos_plan import Plan
from scheduler.experiments.chaos_report import summarize

DEMO = Plan(
    "demo",
    jobs=2_000,
    produce_s=10,
    workers=2,
    concurrency=16,
    kills=2,
    dlq_jobs=0,
    dlq_produce_s=0,
    settle_timeout_s=60,
)
SEED = 7


async def run(context: DemoContext) -> DemoOutcome:
    """Run the short chaos plan and return the checker's verdict with its figures."""
    report = await execute(
        context.urls.require("redis_url"),
        context.urls.require("database_url"),
        DEMO,
        SEED,
        context.progress,
    )
    return DemoOutcome(proved=report.passed, summary=summarize(report))
