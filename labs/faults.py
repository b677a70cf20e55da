"""Fault injection for any lab service: latency, errors, outage, hang, lost answers, crashes.

Pattern: a fault plan (`Faults`, validated, replaced whole by each change) and a
`FaultInjector` that decides each request's fate from the plan in force when it
arrives: held while a hang lasts, then delayed by `latency_ms`, then refused by an
outage, then refused with probability `error_rate`; after the work, its answer dropped
with probability `drop_response_rate`; and at each named crash point the process
SIGKILLs itself with the probability the plan gives that point.

Guarantee: chance comes from one `random.Random`, reseeded at every change of plan
(with the plan's `seed`, else the service's), so the faults among the first n draws
after a change are fixed by the seed and the rates; latency waits on the injected clock.

Failures it models: a slow dependency (`latency_ms`), a flaky one (`error_rate`), one
that is down (`outage`), one that takes the request and never answers (`hang`: held
until the hang is lifted, so the caller's timeout is what ends it, then refused), one
that does the work and loses the answer (`drop_response_rate`: "commit then drop",
the case idempotency keys exist for), and a process that dies mid-request at a named
point (`crash_points`: a real SIGKILL, no cleanup, no answer).

`install_faults` puts an injector on an app: `GET /v1/faults` and an admin-only
`PUT /v1/faults`, and, for requests under the given paths, a middleware that applies
the plan before the work and drops the answer after it. A dropped answer sends the
status line and then closes the connection without the body (uvicorn closes it when
an app returns mid-response, logging one line), so the client sees a broken
connection after the server did the work, as with a network failure.
"""

import asyncio
import logging
import os
import random
import signal
from collections.abc import Callable, Collection, Sequence
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labs.clock import Clock
from labs.web.auth import AdminDep
from labs.web.problems import ProblemError, problem_response

MAX_LATENCY_MS = 600_000
_log = logging.getLogger("labs.faults")


class Fault(StrEnum):
    """What an injector did to a request."""

    HANG = "hang"
    OUTAGE = "outage"
    ERROR_RATE = "error_rate"
    DROP_RESPONSE = "drop_response"


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Faults(BaseModel):
    """A fault plan: each field off by default, so `{}` is a healthy service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: int = Field(default=0, ge=0, le=MAX_LATENCY_MS, description="Delay per request.")
    error_rate: Probability = Field(default=0.0, description="Share refused with 503.")
    outage: bool = Field(default=False, description="Refuse every request with 503.")
    hang: bool = Field(default=False, description="Never answer until the hang is lifted.")
    drop_response_rate: Probability = Field(
        default=0.0, description="Share whose answer is lost after the work is done."
    )
    crash_points: dict[str, Probability] = Field(
        default_factory=dict,
        description="Named point -> chance the process SIGKILLs itself on reaching it.",
    )
    seed: int | None = Field(default=None, description="Seeds the draws (default: the service's).")


class UnknownCrashPointError(ValueError):
    """A plan names a crash point the service does not have."""


def _sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class FaultInjector:
    """Applies the fault plan in force to each request."""

    def __init__(
        self,
        clock: Clock,
        seed: int,
        *,
        crash_points: Collection[str] = (),
        kill: Callable[[], None] = _sigkill_self,
    ) -> None:
        """Start with no faults; `crash_points` are the names this service can crash at."""
        self._clock = clock
        self._seed = seed
        self._rng = random.Random(seed)
        self._plan = Faults()
        self._hang_lifted = asyncio.Event()
        self._hang_lifted.set()
        self._kill = kill
        self.crash_points = frozenset(crash_points)
        self.held = 0
        """Requests waiting now for a hang to be lifted."""

    @property
    def plan(self) -> Faults:
        """Return the plan in force."""
        return self._plan

    def change(self, plan: Faults) -> None:
        """Put `plan` in force, restart the draws from the seed, and free held requests."""
        unknown = set(plan.crash_points) - self.crash_points
        if unknown:
            known = ", ".join(sorted(self.crash_points)) or "none"
            msg = f"unknown crash point(s) {', '.join(sorted(unknown))}; this service has {known}"
            raise UnknownCrashPointError(msg)
        self._plan = plan
        self._rng.seed(self._seed if plan.seed is None else plan.seed)
        if plan.hang:
            self._hang_lifted.clear()
        else:
            self._hang_lifted.set()

    async def apply(self) -> Fault | None:
        """Wait as the plan says; return the fault that refuses this request, if any."""
        plan = self._plan
        if plan.hang:
            self.held += 1
            try:
                await self._hang_lifted.wait()
            finally:
                self.held -= 1
            return Fault.HANG
        if plan.latency_ms:
            await self._clock.sleep(plan.latency_ms / 1000)
        if plan.outage:
            return Fault.OUTAGE
        if plan.error_rate and self._rng.random() < plan.error_rate:
            return Fault.ERROR_RATE
        return None

    def drops_response(self) -> bool:
        """Draw whether this request's answer is lost after its work is done."""
        rate = self._plan.drop_response_rate
        return bool(rate) and self._rng.random() < rate

    def reach(self, point: str) -> None:
        """Crash the process here (SIGKILL: no cleanup, no answer) if the plan draws it."""
        if point not in self.crash_points:
            msg = f"{point!r} is not one of this service's crash points"
            raise UnknownCrashPointError(msg)
        chance = self._plan.crash_points.get(point, 0.0)
        if chance and self._rng.random() < chance:
            _log.warning("injected crash at %s", point)
            logging.shutdown()
            self._kill()


class FaultMiddleware:
    """Applies an injector's plan to requests under `paths`: refusals first, drops after."""

    def __init__(
        self, app: ASGIApp, injector: FaultInjector, paths: Sequence[str], injected: Counter
    ) -> None:
        """Wrap `app`; `injected` counts the faults by kind."""
        self._app = app
        self._injector = injector
        self._paths = tuple(paths)
        self._injected = injected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse, pass, or pass and drop the answer, as the plan draws."""
        if scope["type"] != "http" or not str(scope["path"]).startswith(self._paths):
            await self._app(scope, receive, send)
            return
        fault = await self._injector.apply()
        if fault is not None:
            self._injected.labels(fault).inc()
            problem = ProblemError(
                503, "Injected fault", f"the service is injecting {fault}", fault=fault
            )
            await problem_response(problem)(scope, receive, send)
            return
        if not self._injector.drops_response():
            await self._app(scope, receive, send)
            return
        self._injected.labels(Fault.DROP_RESPONSE).inc()
        await self._app(scope, receive, _discard)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]}
        )


async def _discard(message: Message) -> None:
    del message


fault_router = APIRouter(tags=["faults"])


def _injector(request: Request) -> FaultInjector:
    injector: FaultInjector = request.app.state.faults
    return injector


InjectorDep = Annotated[FaultInjector, Depends(_injector)]


@fault_router.get("/v1/faults", summary="The fault plan in force")
async def read_faults(injector: InjectorDep) -> Faults:
    """Latency, error rate, outage, hang, dropped answers and crash points, as last set."""
    return injector.plan


@fault_router.put(
    "/v1/faults",
    summary="Replace the fault plan",
    responses={401: {"description": "Admin token required"}, 422: {"description": "Bad plan"}},
)
async def change_faults(plan: Faults, injector: InjectorDep, _: AdminDep) -> Faults:
    """Put `plan` in force (fields left out are off); held requests go if the hang ends."""
    try:
        injector.change(plan)
    except UnknownCrashPointError as exc:
        raise ProblemError(422, "Unknown crash point", str(exc)) from exc
    return plan


def install_faults(app: FastAPI, injector: FaultInjector, paths: Sequence[str] = ()) -> None:
    """Serve `/v1/faults` for `injector`, and apply it to requests under `paths`.

    With no `paths` the service applies the injector itself, where its work needs it.
    """
    app.state.faults = injector
    app.include_router(fault_router)
    if paths:
        injected = Counter(
            "lab_faults_injected",
            "Faults injected by kind",
            ["fault"],
            registry=app.state.metrics_registry,
        )
        app.add_middleware(FaultMiddleware, injector=injector, paths=paths, injected=injected)
