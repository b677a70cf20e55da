"""The benchmark targets `lab bench <target>` runs: what to start, how hard to push, what to judge.

A target names its own app and the peers it is compared with (all run in the same
invocation, one after the other, on the same servers), a Locust file, the workload
shape, two profiles (`quick` for a look, `full` for the figures a README quotes), an
optional in-process measurement, and the goals it is judged by. Profiles are sized
for the shared 2-core machines the lab runs on, where Locust competes with the
service for the CPU: a handful of users already saturates one service process.
"""

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.workload import Shape
from rate_limiter.domain import Algorithm

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Profile:
    """How big a run is; every field can be overridden on the command line."""

    name: str
    users: int
    spawn_rate: float
    duration_s: int
    decision_ops: int
    decision_rounds: int
    concurrency: int = 64


@dataclass(frozen=True)
class Run:
    """One invocation: where its files go and the names that keep its keys apart."""

    stamp: str
    namespace: str
    raw_dir: Path
    redis_url: str
    seed: int
    shape: Shape
    rule: str


@dataclass(frozen=True)
class App:
    """A server put under load: the target's own service or a peer."""

    name: str
    summary: str
    command: Callable[[int], list[str]]
    environment: Callable[[Run], dict[str, str]]
    strict: bool
    """The Locust file checks the whole decision (rule, remaining, decided_by, Retry-After)."""
    key_pattern: Callable[[Run], str]
    """Every Redis key this app writes in a run (deleted afterwards)."""


InProcess = Callable[[Run, Profile, Progress], dict[str, Any]]
Judge = Callable[[dict[str, Any]], tuple[dict[str, Any], list[dict[str, Any]]]]


@dataclass(frozen=True)
class Target:
    """What `lab bench <name>` runs."""

    name: str
    summary: str
    servers: frozenset[str]
    locustfile: Path
    app: App
    peers: tuple[App, ...]
    shape: Shape
    rule: str
    profiles: dict[str, Profile]
    judge: Judge
    inprocess: InProcess | None = None
    half_peak_share: float = 0.5
    correctness_requests: int = 40


# --- rate-limiter: our sliding_log service against limits' MovingWindowRateLimiter ---

_RULE = "bench"
_LOCUSTFILES = Path(__file__).parent / "locustfiles"
_SHAPE = Shape(limit=8, period_s=60, requests_per_key=10, pool=8)
_ALGORITHM = Algorithm.SLIDING_LOG


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def _service_env(run: Run) -> dict[str, str]:
    rules = run.raw_dir / "rules.toml"
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_text(
        f"[rules.{run.rule}]\n"
        f'algorithm = "{_ALGORITHM}"\n'
        f"limit = {run.shape.limit}\n"
        f"period_ms = {run.shape.period_s * 1000}\n"
        'fail_mode = "closed"\n'
    )
    return {
        "REDIS_URL": run.redis_url,
        "RATE_LIMITER_RULES_FILE": str(rules),
        "RATE_LIMITER_KEY_PREFIX": run.namespace,
        "RATE_LIMITER_LOG_LEVEL": "WARNING",
    }


def _peer_env(run: Run) -> dict[str, str]:
    return {
        "REDIS_URL": run.redis_url,
        "LIMITS_APP_STRATEGY": "moving-window",
        "LIMITS_APP_RULE": run.rule,
        "LIMITS_APP_LIMIT": str(run.shape.limit),
        "LIMITS_APP_PERIOD_S": str(run.shape.period_s),
        "LIMITS_APP_KEY_PREFIX": f"LIMITS-{run.namespace}",
    }


RATE_LIMITER_APP = App(
    name="rate-limiter",
    summary=f"`lab serve rate-limiter`, rule `{_ALGORITHM}` {_SHAPE.limit}/{_SHAPE.period_s}s",
    command=lambda port: _python("-m", "labs", "serve", "rate-limiter", "--port", str(port)),
    environment=_service_env,
    strict=True,
    key_pattern=lambda run: f"{run.namespace}:*",
)
LIMITS_APP = App(
    name="limits-app",
    summary="FastAPI + `limits` MovingWindowRateLimiter, async redis-py storage",
    command=lambda port: _python(
        "-m",
        "uvicorn",
        "benchmarks.peers.limits_app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ),
    environment=_peer_env,
    strict=False,
    key_pattern=lambda run: f"LIMITS-{run.namespace}*",
)


def _decisions(run: Run, profile: Profile, progress: Progress) -> dict[str, Any]:
    from benchmarks.decisions import measure  # noqa: PLC0415 - imported when a run needs it

    return asyncio.run(
        measure(
            run.redis_url,
            shape=run.shape,
            algorithm=_ALGORITHM,
            ops=profile.decision_ops,
            rounds=profile.decision_rounds,
            concurrency=profile.concurrency,
            seed=run.seed,
            prefix=f"{run.namespace}-inproc",
            progress=progress,
        )
    )


DECISION_RT_GOAL = 1.3
THROUGHPUT_GOAL = 1.5
P99_GOAL_MS = 2.0
_PACE_TOLERANCE = 0.9  # a paced run that reached less than 90% of its pace did not test the goal


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def _correct(results: dict[str, Any], app: str) -> tuple[bool, str]:
    """Return whether `app` decided exactly, in the correctness pass and under load."""
    single = results["correctness"].get(app, {})
    run = results["runs"].get(app, {})
    mismatches = run.get("decisions", {}).get("mismatches")
    failures = run.get("failures")
    exact = bool(single.get("exact")) and mismatches == 0 and failures == 0
    detail = (
        f"{app}: {single.get('admitted')}/{single.get('requests')} admitted at limit "
        f"{single.get('limit')}, {mismatches} mismatches and {failures} failures under load"
    )
    return exact, detail


def judge_rate_limiter(results: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Compute the ratios and the three goals' verdicts from one run's results."""
    ours, peer = results["runs"]["rate-limiter"], results["runs"]["limits-app"]
    half = results["runs"]["rate-limiter@half-peak"]
    decisions = results["decisions"]
    rt_ratio = decisions["ratios"]["rt_p50"]
    rps_ratio = _ratio(ours["rps"], peer["rps"])
    half_p99 = half["latency_ms"]["p99"]
    paced = _ratio(half["rps"], half["target_rps"])
    ratios = {
        "decision_rt_p50_vs_noop_evalsha": rt_ratio,
        "decision_rt_mean_vs_noop_evalsha": decisions["ratios"]["rt_mean"],
        "decisions_per_s_vs_noop_evalsha_concurrent": decisions["ratios"]["per_s_concurrent"],
        "service_rps_vs_limits_app": rps_ratio,
        "service_cpu_per_request_vs_limits_app": _ratio(
            ours.get("service_cpu_ms_per_request"), peer.get("service_cpu_ms_per_request")
        ),
        "half_peak_achieved_vs_paced": paced,
    }
    ours_exact, ours_detail = _correct(results, "rate-limiter")
    peer_exact, peer_detail = _correct(results, "limits-app")
    noop_ms = decisions["noop"]["sequential"]["rt_ms"]["p50"]
    check_ms = decisions["decision"]["sequential"]["rt_ms"]["p50"]
    goals = [
        {
            "id": "decision-rt",
            "goal": f"decision round trip <= {DECISION_RT_GOAL}x a no-op EVALSHA (p50)",
            "threshold": DECISION_RT_GOAL,
            "figure": rt_ratio,
            "met": rt_ratio is not None and rt_ratio <= DECISION_RT_GOAL,
            "detail": f"RedisLimiter.check {check_ms} ms vs no-op EVALSHA {noop_ms} ms (p50)",
        },
        {
            "id": "throughput-vs-limits",
            "goal": f"service throughput >= {THROUGHPUT_GOAL}x the `limits` app at equal "
            "correctness",
            "threshold": THROUGHPUT_GOAL,
            "figure": rps_ratio,
            "met": rps_ratio is not None
            and rps_ratio >= THROUGHPUT_GOAL
            and ours_exact
            and peer_exact,
            "detail": f"{ours['rps']} vs {peer['rps']} req/s; equal correctness: "
            f"{'yes' if ours_exact and peer_exact else 'NO'} ({ours_detail}; {peer_detail})",
        },
        {
            "id": "p99-at-half-peak",
            "goal": f"p99 <= {P99_GOAL_MS} ms at half of peak throughput",
            "threshold": P99_GOAL_MS,
            "figure": half_p99,
            "met": half_p99 is not None
            and half_p99 <= P99_GOAL_MS
            and paced is not None
            and paced >= _PACE_TOLERANCE,
            "detail": f"p99 {half_p99} ms at {half['rps']} req/s (paced to {half['target_rps']}, "
            f"half of the {ours['rps']} req/s peak)",
        },
    ]
    return ratios, goals


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target(
            name="rate-limiter",
            summary="POST /v1/check on the rate limiter (sliding_log) vs the `limits` library "
            "(moving window); in-process decisions vs a no-op EVALSHA",
            servers=frozenset({"redis"}),
            locustfile=_LOCUSTFILES / "rate_limiter.py",
            app=RATE_LIMITER_APP,
            peers=(LIMITS_APP,),
            shape=_SHAPE,
            rule=_RULE,
            profiles={
                "quick": Profile(
                    "quick",
                    users=20,
                    spawn_rate=20,
                    duration_s=10,
                    decision_ops=2_000,
                    decision_rounds=3,
                ),
                "full": Profile(
                    "full",
                    users=50,
                    spawn_rate=25,
                    duration_s=60,
                    decision_ops=10_000,
                    decision_rounds=5,
                ),
            },
            judge=judge_rate_limiter,
            inprocess=_decisions,
        ),
    )
}
