"""The scheduler run as a picture: throughput bars and pickup latency bars per system.

Left, enqueue and process throughput (jobs/s) side by side for every system; right,
pickup latency p50 and p99 on the idle and on the loaded queue, on a log scale (a
polling system and a blocking one differ by orders of magnitude), with the idle p99
goal drawn as a line. Written next to the results file, from it alone.
"""

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from benchmarks.scheduler.stats import IDLE_P99_GOAL_MS

_THROUGHPUTS = (("enqueue", "enqueue"), ("process", "process"))
_PICKUPS = (
    ("pickup_idle_ms", "p50", "idle p50"),
    ("pickup_idle_ms", "p99", "idle p99"),
    ("pickup_loaded_ms", "p50", "loaded p50"),
    ("pickup_loaded_ms", "p99", "loaded p99"),
)


def _bars(axes: Any, names: list[str], series: list[tuple[str, list[float]]]) -> None:
    width = 0.8 / len(series)
    for offset, (label, values) in enumerate(series):
        axes.bar([i + offset * width for i in range(len(names))], values, width, label=label)
    axes.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(names))], names)
    axes.tick_params(axis="x", labelsize=8)


def plot(document: dict[str, Any], path: Path) -> Path:
    """Draw the run in `document` into `path` (PNG) and return it."""
    systems = document["results"]["systems"]
    names = list(systems)
    figure = Figure(figsize=(12, 4.5))
    left, right = figure.subplots(1, 2)
    _bars(
        left,
        names,
        [(label, [systems[n][key]["per_s"] or 0 for n in names]) for key, label in _THROUGHPUTS],
    )
    left.set(ylabel="jobs/s", title="Throughput (higher is better)")
    left.legend(fontsize=8)
    _bars(
        right,
        names,
        [(label, [systems[n][key][q] or 0 for n in names]) for key, q, label in _PICKUPS],
    )
    right.axhline(
        IDLE_P99_GOAL_MS,
        color="black",
        linestyle="--",
        linewidth=0.8,
        label=f"goal: idle p99 <= {IDLE_P99_GOAL_MS:g} ms",
    )
    right.set(yscale="log", ylabel="ms (log)", title="Pickup latency, enqueue to start")
    right.legend(fontsize=8)
    profile = document.get("profile", {})
    figure.suptitle(
        f"lab bench scheduler {document['name']} ({profile.get('name')}: {profile.get('jobs'):,} "
        f"jobs, {profile.get('workers')} worker processes x {profile.get('concurrency')})",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path
