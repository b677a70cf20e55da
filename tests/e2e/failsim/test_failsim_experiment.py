"""The experiment runner on the real chain: results files and plots, every claim with its figure."""

import json
from pathlib import Path

from labs.experiments import ExperimentContext, Size
from labs.failsim.experiments.run import run_scenarios
from labs.failsim.experiments.scenario import SCENARIOS, all_scenarios, load_scenario
from labs.settings import ServerUrls


def test_every_scenario_file_is_valid() -> None:
    """All five scenario files parse, and each claim names one of its scenario's variants."""
    scenarios = all_scenarios()
    assert len(scenarios) == 5
    for scenario in scenarios:
        labels = (
            {str(jitter) for jitter in scenario.jitters}
            if scenario.kind == "contention"
            else {variant.label for variant in scenario.variants}
        )
        for claim in scenario.claims:
            assert claim.variant in labels
            assert claim.over is None or claim.over in labels


async def test_the_quick_run_writes_results_and_plots(lab_urls: ServerUrls, tmp_path: Path) -> None:
    """The simulation and a chain scenario write JSON with figures and verdicts, and a PNG."""
    context = ExperimentContext(
        urls=lab_urls, size=Size.QUICK, seed=3, results_dir=tmp_path, progress=lambda _: None
    )
    names = ("1-backoff-contention", "5-idempotency")
    summary = await run_scenarios(context, [load_scenario(SCENARIOS / f"{n}.toml") for n in names])
    for name in ("backoff-contention", "idempotency"):
        document = json.loads((tmp_path / f"{name}.json").read_text())
        assert document["size"] == "quick"
        assert document["machine"]["cores"]
        assert document["results"]["runs"]
        for claim in document["results"]["claims"]:
            assert claim["figure"] is not None
            assert claim["text"] in summary
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    idempotency = json.loads((tmp_path / "idempotency.json").read_text())["results"]
    by_variant = {run["variant"]: run for run in idempotency["runs"]}
    assert by_variant["retries with idempotency keys"]["duplicates"] == 0
    assert by_variant["retries without keys"]["duplicates"] > 0
