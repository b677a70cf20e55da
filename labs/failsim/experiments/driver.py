"""Driving the chain: set each hop's faults and policies, send the load, read the counts.

The load generator is the chain's first caller, `client`, and calls the gateway
through the same `DependencyClient` the hops use, so "3 attempts at each of 3
layers" includes it. Three loads:

- `closed`: N requests with C in flight at once (a closed loop: a new request when
  one ends).
- `for_duration` (closed, for a time) and `open_loop` (a fixed rate, whatever the
  answers: the slow flow of the bulkhead scenario, whose calls pile up as real
  traffic's would).
"""

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from labs.clients import http_client
from labs.clock import SystemClock
from labs.failsim.chain.client import DependencyClient
from labs.failsim.chain.processes import ChainUrls
from labs.failsim.chain.stats import HopStats
from labs.failsim.config import EdgePolicy
from labs.failsim.policies import CallRejectedError, Deadline, DependencyFailedError
from labs.faults import Faults

CLIENT = "client"
LOAD_CONNECTIONS = 200


@dataclass(frozen=True)
class Sample:
    """One request sent by the load generator: when, how long, and how it ended."""

    at: float
    latency_ms: float
    outcome: str
    """`ok`, a refusal reason, or `failed`."""

    @property
    def ok(self) -> bool:
        """Return whether the request succeeded."""
        return self.outcome == "ok"


def edge(caller: str, dependency: str) -> str:
    """Return the name of an edge, as scenario files write it."""
    return f"{caller}->{dependency}"


class ChainDriver:
    """Sets up and measures runs on a running chain."""

    def __init__(self, chain: ChainUrls, admin: httpx.AsyncClient, load: httpx.AsyncClient) -> None:
        """Drive `chain` with `admin` (admin calls) and `load` (the generator's pool)."""
        self.chain = chain
        self._admin = admin
        self._load = load
        self._clock = SystemClock()
        self._seeds = itertools.count(1)

    async def prepare(self, faults: dict[str, Faults], policies: dict[str, EdgePolicy]) -> None:
        """Put each hop's faults and edges' policies in force, then zero every count."""
        for hop, url in self.chain.hops.items():
            await self.set_faults(hop, faults.get(hop, Faults()))
            prefix = edge(hop, "")
            mine = {
                name.removeprefix(prefix): p
                for name, p in policies.items()
                if name.startswith(prefix)
            }
            (await self._admin.put(f"{url}/v1/policies", json=_dump(mine))).raise_for_status()
            (await self._admin.delete(f"{url}/v1/stats")).raise_for_status()

    async def set_faults(self, hop: str, faults: Faults) -> None:
        """Replace `hop`'s fault plan."""
        url = f"{self.chain.hops[hop]}/v1/faults"
        (await self._admin.put(url, json=faults.model_dump())).raise_for_status()

    async def stats(self) -> dict[str, HopStats]:
        """Read every hop's counts."""
        answers = await asyncio.gather(
            *(self._admin.get(f"{url}/v1/stats") for url in self.chain.hops.values())
        )
        return {
            hop: HopStats.model_validate(answer.raise_for_status().json())
            for hop, answer in zip(self.chain.hops, answers, strict=True)
        }

    def client(self, first_hop: str, policy: EdgePolicy) -> DependencyClient:
        """Return a `client -> first_hop` edge on the generator's pool."""
        return DependencyClient(
            self.chain.hops[first_hop], self._load, policy, self._clock, next(self._seeds)
        )

    async def send(self, client: DependencyClient, route: list[str], deadline_s: float) -> Sample:
        """Send one request down `route` (after its first hop); record how it ended."""
        at, started = time.time(), time.perf_counter()
        outcome = "ok"
        try:
            await client.call(uuid.uuid4().hex, route[1:], Deadline.after(self._clock, deadline_s))
        except CallRejectedError as refused:
            outcome = str(refused.reason)
        except DependencyFailedError:
            outcome = "failed"
        return Sample(at, (time.perf_counter() - started) * 1000, outcome)

    async def closed(
        self,
        client: DependencyClient,
        route: list[str],
        deadline_s: float,
        requests: int,
        concurrency: int,
    ) -> list[Sample]:
        """Send `requests` requests, `concurrency` at a time."""
        numbers = iter(range(requests))
        return await self._loop(
            client, route, deadline_s, concurrency, lambda: next(numbers, None) is not None
        )

    async def for_duration(
        self,
        client: DependencyClient,
        route: list[str],
        deadline_s: float,
        concurrency: int,
        seconds: float,
    ) -> list[Sample]:
        """Send requests, `concurrency` at a time, for `seconds`."""
        end = time.monotonic() + seconds
        return await self._loop(
            client, route, deadline_s, concurrency, lambda: time.monotonic() < end
        )

    async def open_loop(
        self,
        client: DependencyClient,
        route: list[str],
        deadline_s: float,
        rate_per_s: float,
        seconds: float,
    ) -> list[Sample]:
        """Start `rate_per_s` requests a second for `seconds`, then wait for them all."""
        started = time.monotonic()
        sending: list[asyncio.Task[Sample]] = []
        for number in itertools.count():
            due = started + number / rate_per_s
            if due - started >= seconds:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            sending.append(asyncio.create_task(self.send(client, route, deadline_s)))
        return list(await asyncio.gather(*sending))

    async def _loop(
        self,
        client: DependencyClient,
        route: list[str],
        deadline_s: float,
        concurrency: int,
        another: Callable[[], bool],
    ) -> list[Sample]:
        samples: list[Sample] = []

        async def worker() -> None:
            while another():
                samples.append(await self.send(client, route, deadline_s))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return samples


@asynccontextmanager
async def driving(chain: ChainUrls) -> AsyncIterator[ChainDriver]:
    """Yield a driver for `chain`, with its admin and load clients open."""
    headers = {"Authorization": f"Bearer {chain.admin_token}"}
    async with (
        httpx.AsyncClient(headers=headers, timeout=30) as admin,
        http_client(max_connections=LOAD_CONNECTIONS) as load,
    ):
        yield ChainDriver(chain, admin, load)


def _dump(policies: dict[str, EdgePolicy]) -> dict[str, object]:
    return {name: policy.model_dump(mode="json") for name, policy in policies.items()}
