"""One PNG per scenario: the trade-off each one measures, with the claims and the machine."""

from pathlib import Path
from typing import Any

from labs.failsim.experiments.scenario import ChainScenario, ContentionScenario, Load
from labs.results import machine


def draw(
    scenario: ContentionScenario | ChainScenario,
    runs: list[dict[str, Any]],
    claims: list[dict[str, Any]],
    path: Path,
) -> None:
    """Draw `scenario`'s figure into `path`."""
    import matplotlib as mpl  # noqa: PLC0415 - only the experiment plots; services never import it

    mpl.use("Agg")
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(11, 4.6))
    left, right = figure.subplots(1, 2)
    if isinstance(scenario, ContentionScenario):
        _by_x(left, runs, "calls", "contending clients", "conditional writes (calls)")
        _by_x(right, runs, "completion_ms", "contending clients", "time until all done (ms)")
    elif scenario.load is Load.OUTAGE:
        _outage(left, right, runs[0])
    elif scenario.load is Load.NEIGHBOUR:
        _bars(left, runs, ["neighbour_p50_ms", "neighbour_p99_ms"], "neighbour latency (ms)")
        _bars(right, runs, ["neighbour_success_rate", "slow_success_rate"], "success rate")
    else:
        metric = (
            "calls_per_request.payments"
            if scenario.name == "amplification"
            else "duplicates_per_request"
        )
        fault = scenario.sweep.fault if scenario.sweep else "x"
        _by_x(
            left,
            runs,
            metric,
            fault,
            metric.replace("_", " "),
            log=scenario.name == "amplification",
        )
        _by_x(right, runs, "success_rate", fault, "success rate")
    left.set_title(scenario.title, fontsize=9)
    info = machine()
    verdicts = "; ".join(
        f"{c['text']}: {c['figure']} ({'met' if c['met'] else 'MISSED'})" for c in claims
    )
    caption = (
        f"{verdicts}. Machine: {info['cpu']}, {info['cores']} cores (shared and loaded: "
        "timings are noisy)"
    )
    figure.text(0.01, 0.01, caption, fontsize=7, color="gray", wrap=True)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.savefig(path, dpi=110)


def _value(run: dict[str, Any], metric: str) -> Any:
    value: Any = run
    for part in metric.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _by_x(
    axes: Any,
    runs: list[dict[str, Any]],
    metric: str,
    xlabel: str,
    ylabel: str,
    *,
    log: bool = False,
) -> None:
    for variant in dict.fromkeys(run["variant"] for run in runs):
        points = [(run["x"], _value(run, metric)) for run in runs if run["variant"] == variant]
        points = [(x, y) for x, y in points if y is not None]
        axes.plot([x for x, _ in points], [y for _, y in points], marker="o", label=variant)
    if log:
        axes.set_yscale("log")
    axes.set(xlabel=xlabel, ylabel=ylabel)
    axes.legend(fontsize=7)


def _bars(axes: Any, runs: list[dict[str, Any]], metrics: list[str], ylabel: str) -> None:
    width = 0.8 / len(metrics)
    for index, metric in enumerate(metrics):
        values = [_value(run, metric) or 0 for run in runs]
        positions = [n + index * width for n in range(len(runs))]
        axes.bar(positions, values, width, label=metric.replace("_", " "))
    axes.set_xticks([n + width / 2 for n in range(len(runs))])
    axes.set_xticklabels([run["variant"] for run in runs], fontsize=7)
    axes.set(ylabel=ylabel)
    axes.legend(fontsize=7)


def _outage(timeline_axes: Any, latency_axes: Any, run: dict[str, Any]) -> None:
    timeline = run["timeline"]
    times = [bucket["t_s"] for bucket in timeline]
    for outcome in sorted({key for bucket in timeline for key in bucket if key != "t_s"}):
        timeline_axes.plot(times, [bucket.get(outcome, 0) for bucket in timeline], label=outcome)
    timeline_axes.axvline(0, color="black", linestyle="--", label="outage starts")
    if run["breaker_open_after_s"] is not None:
        timeline_axes.axvline(run["breaker_open_after_s"], color="tab:red", label="breaker opens")
    timeline_axes.set(xlabel="seconds from the outage", ylabel="requests per 100 ms")
    timeline_axes.legend(fontsize=7)
    labels = ["before p50", "before p99", "open p50", "open p99", "fail-fast p99 (in orders)"]
    keys = ["before_p50_ms", "before_p99_ms", "open_p50_ms", "open_p99_ms", "fail_fast_p99_ms"]
    latency_axes.bar(labels, [run.get(key) or 0 for key in keys], color="tab:blue")
    latency_axes.set_yscale("log")
    latency_axes.set(ylabel="ms (log)", title="end-to-end latency, and the breaker's own refusal")
    latency_axes.tick_params(axis="x", labelsize=7)
