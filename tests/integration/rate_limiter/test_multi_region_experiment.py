"""The multi-region experiment end to end, on a tiny grid: real servers, real delays."""

import json
from pathlib import Path

from labs.experiments import ExperimentContext, Size
from labs.settings import ServerUrls
from rate_limiter.experiments.multi_region import Grid, run_grid


async def test_tiny_grid_orders_the_modes_and_writes_results(
    lab_urls: ServerUrls, tmp_path: Path
) -> None:
    """Strict is exact, local over-admits most, eventual lies between; JSON and plot written."""
    context = ExperimentContext(
        lab_urls, Size.QUICK, seed=1, results_dir=tmp_path, progress=lambda _: None
    )
    grid = Grid(delays_ms=(5,), sync_intervals_ms=(10,), windows=1, period_ms=500)
    summary = await run_grid(context, grid)
    cells = {
        c["mode"]: c
        for c in json.loads((tmp_path / "multi-region.json").read_text())["results"]["cells"]
    }
    assert cells["strict"]["over_admission_pct"] == 0.0
    # Each region offers about 88% of the limit, so local alone admits about 2.6x it.
    assert cells["local"]["over_admission_pct"] > 100
    assert cells["eventual"]["over_limit"] <= cells["local"]["over_limit"]
    assert (tmp_path / "multi-region.png").stat().st_size > 10_000
    assert summary.startswith("local over-admits")
