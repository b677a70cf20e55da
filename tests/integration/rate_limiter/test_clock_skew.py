"""The clock-skew experiment: its exact-allowance replay, and a tiny run on the real Redis."""

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from labs.experiments import ExperimentContext, Size
from labs.settings import ServerUrls
from rate_limiter.domain import Algorithm, Limit
from rate_limiter.experiments.clock_skew import (
    IMPLEMENTATIONS,
    QUICK,
    Clock,
    Parameters,
    bucket_timing_tolerance,
    exact_allowance,
    run_experiment,
)

T0 = 1_700_000_000_000_000  # µs, on a whole second, so fixed windows start at T0
MS = 1_000

# Two processes, 0 and 200 ms of skew, 0.8 s per cell. Offered at 4x a limit of 50/s,
# so the full bucket (50) drains within 0.33 s and every bucket cell ends drained,
# which is when `bucket_timing_tolerance` bounds the replay's error.
TINY = replace(
    QUICK, name="test", duration_s=0.8, processes=2, limit=50, overload=4.0, skews_ms=(0, 200)
)


def _ms(*times_ms: int) -> list[int]:
    return [T0 + time_ms * MS for time_ms in times_ms]


def test_exact_allowance_replays_a_token_bucket_by_hand() -> None:
    """2 per second, full at the start: 2 at once, then one token every 500 ms."""
    limit = Limit(Algorithm.TOKEN_BUCKET, 2, 1_000)
    # 0: 2 tokens -> yes, yes, no; 100: 0.2 -> no; 500: 1.0 -> yes; 600: 0.2 -> no;
    # 1000: 1.0 -> yes, then no.  Given in shuffled order: the replay sorts them.
    arrivals = _ms(1000, 0, 600, 0, 100, 0, 500, 1000)
    assert exact_allowance(limit, arrivals) == 4
    assert exact_allowance(Limit(Algorithm.GCRA, 2, 1_000), arrivals) == 4


def test_exact_allowance_replays_a_sliding_log_by_hand() -> None:
    """2 per second in any window (t - 1 s, t]: the units of 0 leave exactly at 1000."""
    limit = Limit(Algorithm.SLIDING_LOG, 2, 1_000)
    # 0: yes, yes, no; 999: window holds 2 -> no; 1000: both units of 0 left -> yes, yes;
    # 1500: the two of 1000 are in (500, 1500] -> no.
    assert exact_allowance(limit, _ms(0, 0, 0, 999, 1000, 1000, 1500)) == 4


def test_exact_allowance_replays_a_fixed_window_by_hand() -> None:
    """2 per calendar second: windows [0, 1000), [1000, 2000), [2000, 3000)."""
    limit = Limit(Algorithm.FIXED_WINDOW, 2, 1_000)
    # window 0: 0, 0 yes, 0 and 999 no; window 1: 1000, 1500 yes, 1999 no; window 2: 2000 yes.
    # (limit x windows touched would say 6: the last window saw one request only)
    assert exact_allowance(limit, _ms(0, 0, 0, 999, 1000, 1500, 1999, 2000)) == 5


def test_clock_offsets_spread_evenly_over_the_skew() -> None:
    """Four processes under 200 ms of skew: -200, -66.7, +66.7 and +200 ms."""
    assert QUICK.offsets_us(200) == [-200_000, -66_667, 66_667, 200_000]
    assert replace(QUICK, processes=1).offsets_us(200) == [0]


def test_bucket_timing_tolerance_is_two_units_plus_the_refill_over_one_round_trip() -> None:
    """50/s and a 40 ms round trip: 2 + 50 x 0.04 = 4 units."""
    assert bucket_timing_tolerance(Limit(Algorithm.TOKEN_BUCKET, 50, 1_000), 40 * MS) == 4


def _cells(document: dict[str, Any], parameters: Parameters) -> list[dict[str, Any]]:
    rows = document["results"]["table"]
    assert len(rows) == len(IMPLEMENTATIONS) * len(parameters.skews_ms)
    assert all(len(row["runs"]) == parameters.repetitions for row in rows)
    return [cell for row in rows for cell in row["runs"]]


@pytest.mark.slow
async def test_a_tiny_run_writes_its_table_and_plot_and_redis_time_stays_exact(
    lab_urls: ServerUrls, tmp_path: Path
) -> None:
    """Every cell is measured; a Redis-TIME bucket is off only by the timing resolution."""
    messages: list[str] = []
    context = ExperimentContext(
        urls=lab_urls, size=Size.QUICK, seed=3, results_dir=tmp_path, progress=messages.append
    )
    summary = await run_experiment(context, TINY)

    document = json.loads((tmp_path / "clock-skew.json").read_text())
    assert document["name"] == "clock-skew"
    assert (document["size"], document["seed"]) == ("test", 3)
    assert {"cpu", "cores"} <= document["machine"].keys()
    results = document["results"]
    assert results["summary"] == summary
    assert summary.startswith("at 200 ms skew (test, 1x0.8 s per cell)")
    assert results["parameters"]["processes"] == TINY.processes
    assert set(results["verdict"]) >= {"server_time_within_tolerance", "tolerance_pct"}
    assert sum(message.startswith("round ") for message in messages) == len(TINY.skews_ms)
    plot = (tmp_path / "clock-skew.png").read_bytes()
    assert plot.startswith(b"\x89PNG\r\n\x1a\n")

    server_time = {item.name for item in IMPLEMENTATIONS if item.clock is Clock.REDIS_TIME}
    cells = _cells(document, TINY)
    assert {cell["implementation"] for cell in cells} == {item.name for item in IMPLEMENTATIONS}
    for cell in cells:
        # every request was answered, and a denial happened: the limit was really reached
        assert cell["requests"] == TINY.processes * TINY.ticks
        assert 0 < cell["admitted"] < cell["requests"]
        if cell["implementation"] in server_time:
            # the one clock is Redis TIME: skew cannot move the count, only timing can
            excess = abs(cell["admitted"] - cell["exact"])
            assert excess <= cell["timing_tolerance_units"], cell
