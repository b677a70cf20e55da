"""`lab bench rate-limiter`: our sliding-log service against `limits`' moving window.

The model for an HTTP target: the apps (ours as `lab serve rate-limiter`, the peer as a
FastAPI app on the `limits` library, benchmarks/peers/limits_app.py), the workload
(benchmarks/workload.py: every answer predicted), a correctness pass (40 requests at
once on one key must admit exactly the limit), the locustfile that checks each answer,
two profiles, an in-process measurement against a no-op EVALSHA, and the judge of the
three goals in benchmarks/README.md. Profiles are sized for the shared 2-core machines
the lab runs on, where Locust competes with the service for the CPU: a handful of
users already saturates one service process.
"""

import asyncio
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness import Progress
from benchmarks.locust_target import App, LocustTarget, Profile, Run
from benchmarks.ratios import ratio
from benchmarks.workload import Shape
from rate_limiter.domain import Algorithm

RULE = "bench"
LOCUSTFILE = Path(__file__).parents[1] / "locustfiles" / "rate_limiter.py"
SHAPE = Shape(limit=8, period_s=60, requests_per_key=10, pool=8)
ALGORITHM = Algorithm.SLIDING_LOG
CORRECTNESS_REQUESTS = 40


def python(*args: str) -> list[str]:
    """Return a command run by this interpreter."""
    return [sys.executable, *args]


def _service_env(run: Run) -> dict[str, str]:
    rules = run.raw_dir / "rules.toml"
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_text(
        f"[rules.{RULE}]\n"
        f'algorithm = "{ALGORITHM}"\n'
        f"limit = {SHAPE.limit}\n"
        f"period_ms = {SHAPE.period_s * 1000}\n"
        'fail_mode = "closed"\n'
    )
    return {
        "RATE_LIMITER_RULES_FILE": str(rules),
        "RATE_LIMITER_KEY_PREFIX": run.namespace,
        "RATE_LIMITER_LOG_LEVEL": "WARNING",
    }


def _peer_env(run: Run) -> dict[str, str]:
    return {
        "LIMITS_APP_STRATEGY": "moving-window",
        "LIMITS_APP_RULE": RULE,
        "LIMITS_APP_LIMIT": str(SHAPE.limit),
        "LIMITS_APP_PERIOD_S": str(SHAPE.period_s),
        "LIMITS_APP_KEY_PREFIX": f"LIMITS-{run.namespace}",
    }


RATE_LIMITER_APP = App(
    name="rate-limiter",
    summary=f"`lab serve rate-limiter`, rule `{ALGORITHM}` {SHAPE.limit}/{SHAPE.period_s}s",
    command=lambda port: python("-m", "labs", "serve", "rate-limiter", "--port", str(port)),
    environment=_service_env,
    key_pattern=lambda run: f"{run.namespace}:*",
    locust_env={"BENCH_STRICT": "1"},  # check the whole decision: rule, remaining, decided_by
)
LIMITS_APP = App(
    name="limits-app",
    summary="FastAPI + `limits` MovingWindowRateLimiter, async redis-py storage",
    command=lambda port: python(
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
    key_pattern=lambda run: f"LIMITS-{run.namespace}*",
)
LOCUST_ENV = {
    "BENCH_RULE": RULE,
    "BENCH_LIMIT": str(SHAPE.limit),
    "BENCH_REQUESTS_PER_KEY": str(SHAPE.requests_per_key),
    "BENCH_POOL": str(SHAPE.pool),
}
WORKLOAD = {**asdict(SHAPE), "rule": RULE}


async def correctness_pass(run: Run, app: App, url: str) -> dict[str, Any]:
    """Send 40 checks on one fresh key at once; an exact limiter admits exactly the limit."""
    key = f"{run.namespace}-{app.name}-correctness"
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        responses = await asyncio.gather(
            *(
                client.post("/v1/check", json={"rule": RULE, "key": key, "cost": 1})
                for _ in range(CORRECTNESS_REQUESTS)
            )
        )
    statuses = [response.status_code for response in responses]
    admitted = sum(status == httpx.codes.OK for status in statuses)
    other = [status for status in statuses if status not in (200, 429)]
    return {
        "requests": CORRECTNESS_REQUESTS,
        "concurrent": True,
        "limit": SHAPE.limit,
        "admitted": admitted,
        "other_statuses": other,
        "exact": admitted == SHAPE.limit and not other,
    }


def _decisions(run: Run, profile: Profile, progress: Progress) -> dict[str, Any]:
    from benchmarks.decisions import measure  # noqa: PLC0415 - imported when a run needs it

    return asyncio.run(
        measure(
            run.redis_url,
            shape=SHAPE,
            algorithm=ALGORITHM,
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


def exact(results: dict[str, Any], app: str) -> tuple[bool, str]:
    """Return whether `app` decided exactly, in the correctness pass and under load."""
    single = results["correctness"].get(app, {})
    run = results["runs"].get(app, {})
    mismatches = run.get("checks", {}).get("mismatches")
    failures = run.get("failures")
    ok = bool(single.get("exact")) and mismatches == 0 and failures == 0
    detail = (
        f"{app}: {single.get('admitted')}/{single.get('requests')} admitted at limit "
        f"{single.get('limit')}, {mismatches} mismatches and {failures} failures under load"
    )
    return ok, detail


def judge(results: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Compute the ratios and the three goals' verdicts from one run's results."""
    ours, peer = results["runs"]["rate-limiter"], results["runs"]["limits-app"]
    half = results["runs"]["rate-limiter@half-peak"]
    decisions = results["decisions"]
    rt_ratio = decisions["ratios"]["rt_p50"]
    rps_ratio = ratio(ours["rps"], peer["rps"])
    half_p99 = half["latency_ms"]["p99"]
    paced = ratio(half["rps"], half["target_rps"])
    ratios = {
        "decision_rt_p50_vs_noop_evalsha": rt_ratio,
        "decision_rt_mean_vs_noop_evalsha": decisions["ratios"]["rt_mean"],
        "decisions_per_s_vs_noop_evalsha_concurrent": decisions["ratios"]["per_s_concurrent"],
        "service_rps_vs_limits_app": rps_ratio,
        "service_cpu_per_request_vs_limits_app": ratio(
            ours.get("service_cpu_ms_per_request"), peer.get("service_cpu_ms_per_request")
        ),
        "half_peak_achieved_vs_paced": paced,
    }
    ours_exact, ours_detail = exact(results, "rate-limiter")
    peer_exact, peer_detail = exact(results, "limits-app")
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


TARGET = LocustTarget(
    name="rate-limiter",
    locustfile=LOCUSTFILE,
    app=RATE_LIMITER_APP,
    peers=(LIMITS_APP,),
    profiles={
        "quick": Profile(
            "quick", users=20, spawn_rate=20, duration_s=10, decision_ops=2_000, decision_rounds=3
        ),
        "full": Profile(
            "full", users=50, spawn_rate=25, duration_s=60, decision_ops=10_000, decision_rounds=5
        ),
    },
    judge=judge,
    workload=WORKLOAD,
    locust_env=LOCUST_ENV,
    correctness=correctness_pass,
    paced_share=0.5,
    inprocess=_decisions,
    packages=("limits",),
)
