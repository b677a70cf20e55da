"""`lab bench rate-limiter-500`: the rate limiter and its peer with 500 users at once.

The latency claim "500+ concurrent requests with sub-200ms response times" measured as
it reads: 500 Locust users, each with one request in flight as soon as its last one is
answered, against `lab serve rate-limiter` and then the `limits` app (the same apps,
workload and checks as `rate-limiter`), judged on the p99 of every answer. On a 2-core
machine where Locust shares the cores with the service, 500 closed-loop users queue
behind one service process: the figure says what a caller waits at that concurrency.
"""

from typing import Any

from benchmarks.locust_target import LocustTarget, Profile
from benchmarks.targets import rate_limiter

USERS = 500
P99_GOAL_MS = 200.0


def judge(results: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Judge p99 < 200 ms with 500 users, answers all checked and exact."""
    ours = results["runs"]["rate-limiter"]
    p99 = ours["latency_ms"]["p99"]
    exact, detail = rate_limiter.exact(results, "rate-limiter")
    goal = {
        "id": "p99-at-500-users",
        "goal": f"p99 < {P99_GOAL_MS:g} ms with {ours['users']} concurrent users, every answer "
        "exact",
        "threshold": P99_GOAL_MS,
        "figure": p99,
        "met": p99 is not None and p99 < P99_GOAL_MS and exact,
        "detail": f"p50 {ours['latency_ms']['p50']} ms, p99 {p99} ms at {ours['rps']} req/s; "
        f"{detail}",
    }
    return {}, [goal]


TARGET = LocustTarget(
    name="rate-limiter-500",
    locustfile=rate_limiter.LOCUSTFILE,
    app=rate_limiter.RATE_LIMITER_APP,
    peers=(rate_limiter.LIMITS_APP,),
    profiles={
        "quick": Profile("quick", users=USERS, spawn_rate=100, duration_s=10),
        "full": Profile("full", users=USERS, spawn_rate=100, duration_s=60),
    },
    judge=judge,
    workload=rate_limiter.WORKLOAD,
    locust_env=rate_limiter.LOCUST_ENV,
    correctness=rate_limiter.correctness_pass,
    packages=("limits",),
)
