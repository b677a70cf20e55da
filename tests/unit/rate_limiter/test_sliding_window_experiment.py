"""The sliding-window error experiment: pure models, so it runs without servers."""

import json
from pathlib import Path

from labs.experiments import ExperimentContext, Size
from labs.settings import ServerUrls
from rate_limiter.experiments.sliding_window import run


async def test_burst_at_a_window_end_is_the_approximations_worst_case(tmp_path: Path) -> None:
    """The exact log never passes the limit; the window overshoots most after an end burst."""
    context = ExperimentContext(
        ServerUrls(), Size.QUICK, seed=3, results_dir=tmp_path, progress=print
    )
    await run(context)
    rows = {
        r["pattern"]: r
        for r in json.loads((tmp_path / "sliding-window-error.json").read_text())["results"]["rows"]
    }
    assert all(row["exact_worst_window"] <= 100 for row in rows.values())
    assert (
        rows["burst then 2x"]["overshoot"]
        > rows["poisson 2x"]["overshoot"]
        >= rows["steady 2x"]["overshoot"]
    )
