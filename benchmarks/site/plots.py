"""The report's figures, drawn by matplotlib (no GUI backend) from a results file alone.

Each function takes one HTTP benchmark's results document and writes one PNG, or
returns None when the document does not carry what the figure needs (files written
before the tally recorded histograms and Locust's per-second history): the page then
says the figure is missing and why, rather than drawing something else in its place.
"""

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from benchmarks.ratios import peer_ratios

PERCENTILES = ("p50", "p95", "p99", "p99.9")
_WIDTH_IN = 9.0
_DPI = 100


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI)
    return path


def _runs(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    runs: dict[str, dict[str, Any]] = document["results"].get("runs", {})
    return runs


def percentiles(document: dict[str, Any], path: Path) -> Path | None:
    """Bars of p50, p95, p99 and p99.9 for every run, on a log scale."""
    runs = _runs(document)
    if not runs:
        return None
    figure = Figure(figsize=(_WIDTH_IN, 3.6))
    axes = figure.subplots()
    width = 0.8 / len(PERCENTILES)
    for offset, name in enumerate(PERCENTILES):
        values = [run["latency_ms"].get(name) or 0 for run in runs.values()]
        axes.bar([i + offset * width for i in range(len(runs))], values, width, label=name)
    axes.set_xticks([i + width * 1.5 for i in range(len(runs))], list(runs), fontsize=8)
    axes.set(yscale="log", ylabel="ms (log)", title="Latency percentiles per run (every answer)")
    axes.legend(fontsize=8)
    return _save(figure, path)


def histogram(document: dict[str, Any], path: Path) -> Path | None:
    """Each run's latency histogram (share of answers per bucket), log-spaced buckets."""
    runs = {name: run for name, run in _runs(document).items() if run.get("latency_histogram_ms")}
    if not runs:
        return None
    figure = Figure(figsize=(_WIDTH_IN, 3.6))
    axes = figure.subplots()
    for name, run in runs.items():
        buckets = run["latency_histogram_ms"]
        total = sum(count for _, _, count in buckets)
        lowers = [lower for lower, _, _ in buckets]
        shares = [100 * count / total for _, _, count in buckets]
        axes.step(lowers, shares, where="post", label=name)
    axes.set(xscale="log", xlabel="ms (log)", ylabel="% of answers", title="Latency histogram")
    axes.legend(fontsize=8)
    return _save(figure, path)


def timeline(document: dict[str, Any], path: Path) -> Path | None:
    """p50, p95 and p99 each second of every run (Locust's last-10-s window)."""
    runs = {name: run for name, run in _runs(document).items() if run.get("timeline")}
    if not runs:
        return None
    figure = Figure(figsize=(_WIDTH_IN, 2.4 * len(runs)))
    for axes, (name, run) in zip(
        figure.subplots(len(runs), 1, squeeze=False)[:, 0], runs.items(), strict=True
    ):
        points = run["timeline"]
        seconds = [point["t_s"] for point in points]
        for quantile in ("p50", "p95", "p99"):
            axes.plot(seconds, [point[quantile] for point in points], label=quantile)
        axes.set(ylabel="ms", title=name)
        axes.legend(fontsize=8, loc="upper left")
    axes.set(xlabel="seconds since Locust started (the ramp included)")
    return _save(figure, path)


def ratios(document: dict[str, Any], path: Path) -> Path | None:
    """The target against each peer in the same run: req/s, p50 and p99 as ratios.

    Taken from the runs themselves (the target's own app is the first of `apps`), so
    files written before `peer_ratios` was recorded get the figure too.
    """
    ours, *others = document.get("apps") or [None]
    if ours is None:
        return None
    peers = peer_ratios(ours, others, _runs(document))
    if not peers:
        return None
    figure = Figure(figsize=(_WIDTH_IN, 3.2))
    axes = figure.subplots()
    metrics = ("rps", "p50", "p99")
    width = 0.8 / len(peers)
    for offset, (peer, values) in enumerate(peers.items()):
        bars = [values.get(metric) or 0 for metric in metrics]
        axes.bar([i + offset * width for i in range(len(metrics))], bars, width, label=f"vs {peer}")
    axes.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    axes.set_xticks(
        [i + width * (len(peers) - 1) / 2 for i in range(len(metrics))],
        ["req/s (higher: ours faster)", "p50 (lower: ours faster)", "p99 (lower: ours faster)"],
    )
    axes.set(ylabel="ours / peer", title=f"{document.get('target')} against its peers, same run")
    axes.legend(fontsize=8)
    return _save(figure, path)
