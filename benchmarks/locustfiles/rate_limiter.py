"""Locust users for `POST /v1/check`: the rate limiter and its peer, every answer checked.

`lab bench` (benchmarks/harness.py) runs this file headless and configures it through
the environment: `BENCH_SEED`, `BENCH_NAMESPACE` (the keys of this run), `BENCH_RULE`,
`BENCH_LIMIT`, `BENCH_REQUESTS_PER_KEY`, `BENCH_POOL`, `BENCH_TARGET_RPS` (pace the
users to this total with seeded Poisson arrivals; unset: as fast as they can),
`BENCH_STRICT` ("1": the body must carry the rate limiter's whole decision),
`BENCH_TALLY` and `BENCH_PROGRESS` (files).

A response succeeds when it is 200 or 429 and its JSON body says `allowed`
consistently with the status (strict: also the rule, the limit, `remaining` within
0..limit, `decided_by` "redis" and `Retry-After` on a 429); anything else is a
failure. Whether the decision is the exact one the workload predicts (see
benchmarks/workload.py) is tallied apart, as `mismatches`, and so is every response
time at full precision: Locust's own percentiles are rounded to whole milliseconds.
"""

import itertools
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locust import FastHttpUser, events, task
from locust.env import Environment

from benchmarks.timing import latency_summary
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
TALLY_PATH = os.environ.get("BENCH_TALLY")
PROGRESS_PATH = os.environ.get("BENCH_PROGRESS")
ENDPOINT = "/v1/check"
_MAX_EXAMPLES = 5
_PROGRESS_EVERY_S = 1.0
_MAX_BACKLOG_S = 1.0  # a paced user that fell behind catches up at most this much
_OK = 200
_DENIED = 429


@dataclass
class Tally:
    """What the responses said, counted since the users finished spawning."""

    allowed: int = 0
    denied: int = 0
    expected_allowed: int = 0
    mismatches: int = 0
    failures: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def note(self, example: str) -> None:
        """Keep the first few failures and mismatches, to show what went wrong."""
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(example)

    def summary(self) -> dict[str, Any]:
        """Return the counts and exact latency percentiles."""
        return {
            "responses": len(self.latencies_ms),
            "allowed": self.allowed,
            "denied": self.denied,
            "expected_allowed": self.expected_allowed,
            "mismatches": self.mismatches,
            "failures": self.failures,
            "seconds": round(time.monotonic() - self.started, 3),
            "latency_ms": latency_summary(self.latencies_ms),
            "examples": self.examples,
        }


TALLY = Tally()
_last_progress = [0.0]
_environment: list[Environment] = []


def _write(path: str | None, document: dict[str, Any]) -> None:
    if path:
        target = Path(path)
        partial = target.with_suffix(".part")
        partial.write_text(json.dumps(document))
        partial.replace(target)


def _reset(user_count: int, **_: Any) -> None:
    """Start counting afresh once every user runs, as Locust's `--reset-stats` does."""
    global TALLY  # noqa: PLW0603 - one tally per run, replaced when the ramp ends
    TALLY = Tally()
    del user_count


def _on_init(environment: Environment, **_: Any) -> None:
    _environment.append(environment)


def _on_request(name: str, response_time: float, **_: Any) -> None:
    if name != ENDPOINT:
        return
    TALLY.latencies_ms.append(response_time)
    now = time.monotonic()
    runner = _environment[0].runner if _environment else None
    if PROGRESS_PATH and now - _last_progress[0] >= _PROGRESS_EVERY_S and runner:
        _last_progress[0] = now
        total = runner.stats.total
        _write(
            PROGRESS_PATH,
            {
                "users": runner.user_count,
                "requests": total.num_requests,
                "failures": total.num_failures,
                "seconds": round(now - TALLY.started, 3),
                "responses": len(TALLY.latencies_ms),
            },
        )


def _on_stop(**_: Any) -> None:
    _write(TALLY_PATH, TALLY.summary())


def _listen(hook: Any, handler: Callable[..., None]) -> None:
    """Register `handler` on a Locust event hook (whose `add_listener` is untyped)."""
    hook.add_listener(handler)


_listen(events.spawning_complete, _reset)
_listen(events.init, _on_init)
_listen(events.request, _on_request)
_listen(events.test_stop, _on_stop)


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
                TALLY.failures += 1
                TALLY.note(problem)
                self.keys.retire(step.key)
                response.failure(problem)
                return
            response.success()
        TALLY.allowed += body["allowed"]
        TALLY.denied += not body["allowed"]
        TALLY.expected_allowed += step.allowed
        mismatch = _mismatch(body, step)
        if mismatch is not None:
            TALLY.mismatches += 1
            TALLY.note(mismatch)
