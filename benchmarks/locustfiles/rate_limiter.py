"""Locust users for `POST /v1/check`: the rate limiter and its peer, every answer checked.

`lab bench` (benchmarks/harness.py) runs this file headless and configures it through
the environment: `BENCH_SEED`, `BENCH_NAMESPACE` (the keys of this run), `BENCH_RULE`,
`BENCH_LIMIT`, `BENCH_REQUESTS_PER_KEY`, `BENCH_POOL`, `BENCH_TARGET_RPS` (pace the
users to this total with seeded Poisson arrivals; unset: as fast as they can) and
`BENCH_STRICT` ("1": the body must carry the rate limiter's whole decision); what it
records goes through `recording.TALLY` (the contract every locustfile shares).

A response succeeds when it is 200 or 429 and its JSON body says `allowed`
consistently with the status (strict: also the rule, the limit, `remaining` within
0..limit, `decided_by` "redis" and `Retry-After` on a 429); anything else is a
failure. A 429 is a rejection, an expected outcome. Whether the decision is the exact
one the workload predicts (see benchmarks/workload.py) is counted apart, as
`mismatches`.
"""

import itertools
import os
import random
import time
from typing import Any

from locust import FastHttpUser, task

from benchmarks.locustfiles.recording import TALLY
from benchmarks.workload import KeyStream, Shape, Step

SEED = os.environ.get("BENCH_SEED", "7")
NAMESPACE = os.environ.get("BENCH_NAMESPACE", "bench")
RULE = os.environ.get("BENCH_RULE", "bench")
SHAPE = Shape(
    limit=int(os.environ.get("BENCH_LIMIT", "8")),
    requests_per_key=int(os.environ.get("BENCH_REQUESTS_PER_KEY", "10")),
    pool=int(os.environ.get("BENCH_POOL", "8")),
)
STRICT = os.environ.get("BENCH_STRICT") == "1"
TARGET_RPS = float(os.environ.get("BENCH_TARGET_RPS") or 0)
USERS = int(os.environ.get("BENCH_USERS", "1"))
ENDPOINT = "/v1/check"
_MAX_BACKLOG_S = 1.0  # a paced user that fell behind catches up at most this much
_OK = 200
_DENIED = 429


def _problem(status: int, body: Any, step: Step, headers: Any) -> str | None:
    """Return why a response breaks the contract, or None when it keeps it."""
    if status not in (_OK, _DENIED):
        return f"status {status}"
    if not isinstance(body, dict) or not isinstance(body.get("allowed"), bool):
        return f"status {status} without a boolean `allowed` in {str(body)[:80]}"
    if body["allowed"] != (status == _OK):
        return f"status {status} but allowed={body['allowed']}"
    if body.get("limit") != SHAPE.limit:
        return f"limit {body.get('limit')!r}, expected {SHAPE.limit}"
    if not STRICT:
        return None
    remaining = body.get("remaining")
    checks = {
        "rule": body.get("rule") == RULE,
        "remaining": isinstance(remaining, int) and 0 <= remaining <= SHAPE.limit,
        "decided_by": body.get("decided_by") == "redis",
        "Retry-After": status == _OK or bool(headers.get("Retry-After")),
    }
    broken = [name for name, ok in checks.items() if not ok]
    return f"{', '.join(broken)} wrong in {str(body)[:120]} (key {step.key})" if broken else None


def _mismatch(body: dict[str, Any], step: Step) -> str | None:
    """Return how the decision differs from the exact one, or None."""
    where = f"{step.key} request {step.nth}"
    if body["allowed"] != step.allowed:
        return f"{where}: allowed={body['allowed']}, expected {step.allowed}"
    if STRICT and body.get("remaining") != step.remaining:
        return f"{where}: remaining {body.get('remaining')}, expected {step.remaining}"
    return None


def _count(body: dict[str, Any], step: Step) -> None:
    """Tally one well-formed decision against the prediction."""
    TALLY.rejected += not body["allowed"]
    TALLY.checks["allowed"] += body["allowed"]
    TALLY.checks["denied"] += not body["allowed"]
    TALLY.checks["expected_allowed"] += step.allowed
    mismatch = _mismatch(body, step)
    TALLY.checks["mismatches"] += mismatch is not None
    if mismatch is not None:
        TALLY.note(mismatch)


_user_numbers = itertools.count()


class CheckUser(FastHttpUser):
    """Charges its own keys, one request at a time, and checks every answer.

    Unpaced, a user sends its next request as soon as the last one is answered (the
    peak). Paced (`BENCH_TARGET_RPS`), each user starts requests on a schedule of its
    own with exponentially distributed gaps (seeded), so the users together approach
    Poisson arrivals at the target rate instead of firing in lockstep, as fixed
    intervals (`constant_throughput`) would after any stall.
    """

    def on_start(self) -> None:
        """Draw this user's keys and its pacing from its own seeded streams."""
        number = next(_user_numbers)
        self.keys = KeyStream(f"{NAMESPACE}-u{number}", f"{SEED}:{number}", SHAPE)
        self.pace = random.Random(f"{SEED}:{number}:pace")
        self.next_start = time.monotonic()

    def wait_time(self) -> float:
        """Return how long to wait before the next request (0 when unpaced)."""
        if TARGET_RPS <= 0:
            return 0.0
        now = time.monotonic()
        self.next_start = max(self.next_start, now - _MAX_BACKLOG_S)
        self.next_start += self.pace.expovariate(TARGET_RPS / USERS)
        return max(0.0, self.next_start - now)

    @task
    def check(self) -> None:
        """Charge one unit to one of this user's keys."""
        step = self.keys.next()
        payload = {"rule": RULE, "key": step.key, "cost": 1}
        with self.client.post(ENDPOINT, json=payload, catch_response=True) as response:
            try:
                body = response.json()
            except ValueError:
                body = None
            problem = _problem(response.status_code, body, step, response.headers)
            if problem is not None:
                TALLY.fail(problem)
                self.keys.retire(step.key)
                response.failure(problem)
                return
            response.success()
        _count(body, step)
