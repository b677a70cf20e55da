"""Tables from results files: what `lab bench` prints and what benchmarks/README.md quotes.

`render_table(document)` turns one results file into Markdown: for an HTTP target the
Locust runs and any in-process measurement, for `scheduler` one row per system (its
throughputs, their ratios to the fastest peer, its pickup latencies); then the goals
with their verdicts. Nothing in it is typed by
hand: `update_readme` replaces the block between a target's markers with the table of
its latest results file, so a README only ever quotes a measured figure.
"""

import json
from pathlib import Path
from typing import Any


def latest(results_dir: Path) -> Path | None:
    """Return the newest results file in `results_dir` (names are UTC timestamps)."""
    files = sorted(results_dir.glob("*.json"))
    return files[-1] if files else None


def load(path: Path) -> dict[str, Any]:
    """Read a results file."""
    document: dict[str, Any] = json.loads(path.read_text())
    return document


_NONE = "-"


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return _NONE
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _percent(value: float | None) -> str:
    return _NONE if value is None else f"{value * 100:.1f}%"


def _cpu(shares: dict[str, float | None]) -> str:
    """Processes in cores, the machine in percent of all its cores."""
    if not shares:
        return _NONE
    cores = f"{_fmt(shares.get('service'))}, {_fmt(shares.get('locust'))}"
    return f"{cores}; {_percent(shares.get('machine'))}"


def row(cells: list[str]) -> str:
    """Return one Markdown table row."""
    return "| " + " | ".join(cells) + " |"


def header(columns: list[str], right: set[int] | None = None) -> list[str]:
    """Return a table's header row and its rule; columns `right` are right-aligned.

    By default every column but the first is (figures), the first left (names).
    """
    right = set(range(1, len(columns))) if right is None else right
    return [row(columns), row(["---:" if i in right else "---" for i in range(len(columns))])]


def run_checks(run: dict[str, Any]) -> dict[str, Any]:
    """Return a run's own checks (files written before the tally contract call them decisions)."""
    checks: dict[str, Any] = run.get("checks", run.get("decisions", {}))
    return checks


def _runs_table(results: dict[str, Any]) -> list[str]:
    lines = header(
        [
            "run",
            "users",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "p99.9 ms",
            "errors",
            "429s",
            "mismatches",
            "CPU: service, Locust (cores); machine",
            "service CPU ms/req",
        ]
    )
    for label, run in results["runs"].items():
        latency = run["latency_ms"]
        name = label.replace("@half-peak", f" at half peak (paced to {_fmt(run['target_rps'], 0)})")
        lines.append(
            row(
                [
                    name,
                    _fmt(run["users"]),
                    _fmt(run["rps"], 0),
                    *(_fmt(latency[p]) for p in ("p50", "p95", "p99", "p99.9")),
                    _percent(run["error_rate"]),
                    _percent(run["rejection_rate"]),
                    _fmt(run_checks(run).get("mismatches")),
                    _cpu(run.get("cpu_share", {})),
                    _fmt(run.get("service_cpu_ms_per_request")),
                ]
            )
        )
    return lines


_INPROCESS_ROWS = (
    ("noop", "no-op EVALSHA (`return 1`): the ceiling"),
    ("decision", "`RedisLimiter.check` (the decision)"),
    ("noop_with_args", "no-op EVALSHA sent a decision's KEYS and ARGV"),
    ("script", "limiter.lua with prebuilt arguments (no adapter)"),
)


def _inprocess_table(decisions: dict[str, Any]) -> list[str]:
    concurrency = decisions["concurrency"]
    lines = header(
        [
            "in process (no HTTP)",
            "p50 ms",
            "p99 ms",
            "calls/s, 1 in flight",
            f"calls/s, {concurrency} in flight",
            "server µs/call",
            "x no-op p50",
        ]
    )
    noop_p50 = decisions["noop"]["sequential"]["rt_ms"]["p50"]
    for kind, name in _INPROCESS_ROWS:
        if kind not in decisions:
            continue
        sequential = decisions[kind]["sequential"]
        concurrent = decisions[kind].get("concurrent", {})
        p50 = sequential["rt_ms"]["p50"]
        lines.append(
            row(
                [
                    name,
                    _fmt(p50, 3),
                    _fmt(sequential["rt_ms"]["p99"], 3),
                    _fmt(sequential["per_s"], 0),
                    _fmt(concurrent.get("per_s"), 0),
                    _fmt(sequential.get("server_usec_per_call"), 1),
                    _fmt(p50 / noop_p50 if p50 and noop_p50 else None),
                ]
            )
        )
    return lines


def _goals_table(goals: list[dict[str, Any]]) -> list[str]:
    lines = [row(["goal", "measured", "verdict", "figures"]), row(["---", "---:", "---", "---"])]
    for goal in goals:
        verdict = "met" if goal["met"] else "**missed**"
        lines.append(row([goal["goal"], _fmt(goal["figure"]), verdict, goal["detail"]]))
    return lines


def _scheduler_table(results: dict[str, Any]) -> list[str]:
    ratios = results["ratios"]
    lines = header(
        [
            "system",
            "enqueue jobs/s",
            "x fastest peer",
            "process jobs/s",
            "x fastest peer",
            "idle pickup p50 / p99 ms",
            "loaded pickup p50 / p99 ms",
            "worker CPU ms/job",
            "machine busy",
            "jobs (dup.)",
        ]
    )
    for name, run in results["systems"].items():
        idle, loaded = run["pickup_idle_ms"], run["pickup_loaded_ms"]
        lines.append(
            row(
                [
                    name,
                    _fmt(run["enqueue"]["per_s"], 0),
                    _fmt(ratios["enqueue"]["vs_fastest_peer"].get(name)),
                    _fmt(run["process"]["per_s"], 0),
                    _fmt(ratios["process"]["vs_fastest_peer"].get(name)),
                    f"{_fmt(idle['p50'])} / {_fmt(idle['p99'])}",
                    f"{_fmt(loaded['p50'])} / {_fmt(loaded['p99'])}",
                    _fmt(run["process"]["cpu"]["worker_cpu_ms_per_job"], 3),
                    _percent(run["process"]["cpu"]["machine_busy"]),
                    f"{_fmt(run['jobs']['enqueued'])} ({_fmt(run['jobs']['duplicates'])})",
                ]
            )
        )
    return lines


def _scheduler_setup(results: dict[str, Any]) -> list[str]:
    lines = [row(["system", "enqueue API", "knobs"]), row(["---", "---", "---"])]
    for name, run in results["systems"].items():
        knobs = ", ".join(f"{knob} {value}" for knob, value in run["knobs"].items())
        lines.append(row([name, run["enqueue_api"], knobs]))
    return lines


def _render_scheduler(document: dict[str, Any]) -> str:
    results = document["results"]
    profile = document.get("profile", {})
    machine = document.get("machine", {})
    versions = document.get("versions", {})
    peers = ", ".join(f"{name} {versions.get(name)}" for name in ("saq", "taskiq-redis", "streaq"))
    context = (
        f"`{document['name']}` ({profile.get('name')} profile: {_fmt(profile.get('jobs'))} jobs, "
        f"{profile.get('workers')} worker processes x {profile.get('concurrency')} per system, "
        f"{profile.get('idle_jobs')} idle pickups, loaded at {_fmt(profile.get('loaded_rate'), 0)} "
        f"jobs/s for {profile.get('loaded_seconds')} s, seed {profile.get('seed')}), commit "
        f"{document.get('commit')}, {machine.get('cores')} x {machine.get('cpu')}, "
        f"{versions.get('redis_server')}, Python {versions.get('python')}, {peers}"
    )
    plot = f"![lab bench scheduler {document['name']}](results/scheduler/{document['name']}.png)"
    parts = [context, "", plot, "", *_scheduler_table(results), "", *_scheduler_setup(results)]
    parts += ["", *_goals_table(results["goals"])]
    return "\n".join(parts) + "\n"


_COMMON = frozenset(
    {
        "python",
        "locust",
        "fastapi",
        "uvicorn",
        "redis",
        "hiredis",
        "pydantic",
        "redis_server",
        "postgresql_server",
        "broker",
    }
)
"""Versions every HTTP run records; the context line names the others (the peers')."""


def render_table(document: dict[str, Any]) -> str:
    """Return one results file as Markdown: context line, runs, in-process, goals."""
    if document.get("target") == "scheduler":
        return _render_scheduler(document)
    results = document["results"]
    profile = document.get("profile", {})
    machine = document.get("machine", {})
    versions = document.get("versions", {})
    peers = "".join(
        f", {name} {version}" for name, version in versions.items() if name not in _COMMON
    )
    context = (
        f"`{document['name']}` ({profile.get('name')} profile: {profile.get('users')} users, "
        f"{profile.get('duration_s')} s per run, seed {profile.get('seed')}), commit "
        f"{document.get('commit')}, {machine.get('cores')} x {machine.get('cpu')}, "
        f"{versions.get('redis_server')}, Python {versions.get('python')}, "
        f"locust {versions.get('locust')}{peers}"
    )
    parts = [context, "", *_runs_table(results)]
    if "decisions" in results:
        parts += ["", *_inprocess_table(results["decisions"])]
    parts += ["", *_goals_table(results["goals"])]
    return "\n".join(parts) + "\n"


def _headline(document: dict[str, Any]) -> str:
    results = document["results"]
    if document.get("target") == "scheduler":
        ours = results["systems"].get("scheduler+audit") or next(iter(results["systems"].values()))
        return (
            f"{_fmt(ours['process']['per_s'], 0)} jobs/s processed (audit on), "
            f"idle pickup p99 {_fmt(ours['pickup_idle_ms']['p99'])} ms"
        )
    name, run = next(iter(results["runs"].items()))
    return f"{name}: {_fmt(run['rps'], 0)} req/s, p99 {_fmt(run['latency_ms']['p99'])} ms"


def summary_table(root: Path) -> str:
    """Return one row per target: its newest results file, headline figures, goals met."""
    lines = header(
        ["target", "latest results", "profile", "commit", "headline", "goals met"], set()
    )
    for directory in sorted(path for path in root.iterdir() if path.is_dir()):
        path = latest(directory)
        if path is None or directory.name == "verify":
            continue
        document = load(path)
        goals = document["results"].get("goals", [])
        lines.append(
            row(
                [
                    f"`lab bench {directory.name}`",
                    f"[{path.name}](results/{directory.name}/{path.name})",
                    str(document.get("profile", {}).get("name")),
                    str(document.get("commit")),
                    _headline(document),
                    f"{sum(bool(goal['met']) for goal in goals)} of {len(goals)}",
                ]
            )
        )
    return "\n".join(lines) + "\n"


def markers(block: str) -> tuple[str, str]:
    """Return the comments that enclose a generated block (`bench:<target>`, `claims`)."""
    return f"<!-- {block}:start -->", f"<!-- {block}:end -->"


def replace_block(readme: Path, block: str, text: str) -> bool:
    """Replace the generated `block` in `readme` with `text`; False when it has no markers."""
    start, end = markers(block)
    content = readme.read_text()
    if start not in content or end not in content:
        return False
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{text}{end}{tail}")
    return True


def update_readme(readme: Path, target: str, document: dict[str, Any]) -> bool:
    """Show `document` as the target's results block in `readme`, and refresh the summary.

    Return False when the README has no block for the target.
    """
    replace_block(readme, "bench:summary", summary_table(readme.parent / "results"))
    return replace_block(readme, f"bench:{target}", render_table(document))
