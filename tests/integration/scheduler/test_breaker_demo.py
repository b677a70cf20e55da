"""The breaker demo on the real servers: one host down, its lane halted, nothing lost.

Real time by nature (a 1 s cooldown, a 3 s outage): about seven seconds.
"""

import re
from pathlib import Path

from labs.demos import DemoContext
from labs.settings import ServerUrls
from scheduler.breaker_demo import BREAKER, JOBS, run


async def test_an_outage_costs_only_probes_and_every_job_arrives_once(
    lab_urls: ServerUrls, tmp_path: Path
) -> None:
    """The healthy host is served during the outage; the down one pays probes, not attempts."""
    outcome = await run(DemoContext(lab_urls, tmp_path, progress=lambda _: None))
    assert outcome.proved, outcome.summary
    figures = re.search(
        r"opened after (\d+) failed attempts; .* spent (\d+) more .* with (\d+) parked",
        outcome.summary,
    )
    assert figures is not None, outcome.summary
    before, during, parked = map(int, figures.groups())
    assert before < 3 * BREAKER.min_calls  # a handful, not 5 per job
    # Without the breaker every job would spend an attempt or more in the outage.
    assert before + during < JOBS / 2
    assert parked >= JOBS - 2 * BREAKER.probes
    assert f"after recovery {JOBS}/{JOBS} delivered; healthy host {JOBS}/{JOBS}" in outcome.summary
