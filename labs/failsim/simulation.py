"""The AWS backoff simulation, rebuilt: clients contending for one row under optimistic concurrency.

Why a simulation (decision 0014): the AWS Architecture Blog's comparison of the
backoff formulas is itself a simulation, on virtual time, so that the only thing that
varies is the schedule; on a loaded 2-core machine, real sleeps of 5 ms would measure
the scheduler instead. The model is theirs: one row with a version number; each client
reads it, then writes it back conditionally; a write succeeds only if the version is
still the one read, else the client sleeps its backoff and starts over. Every message
crosses a network whose delay is `|normal(mean, sd)|`. Time is the event queue's: an
event at t runs when every earlier event has, so no wall clock is involved, and the
client's sleep is the same `Backoff` schedule the services use.

Measured per formula and client count, averaged over trials: calls (conditional
writes sent) and completion time (when the last client succeeded).
"""

import heapq
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum

from labs.failsim.policies import Backoff


@dataclass(frozen=True)
class Network:
    """Message delay: the absolute value of a normal draw, in seconds."""

    mean_s: float
    sd_s: float

    def delay(self, rng: random.Random) -> float:
        """Draw one message's delay."""
        return abs(rng.normalvariate(self.mean_s, self.sd_s))


class _Step(Enum):
    READ = "read"
    READ_ANSWERED = "read answered"
    WRITE = "write"
    WRITE_ANSWERED = "write answered"


@dataclass
class _Client:
    sleeps: Iterator[float]
    version_read: int = -1
    succeeded: bool = False


@dataclass(frozen=True)
class Contention:
    """One run's outcome: calls (conditional writes) and when the last client was done."""

    calls: int
    completion_s: float


def contend(clients: int, backoff: Backoff, network: Network, rng: random.Random) -> Contention:
    """Run `clients` clients, each updating the row once, to completion."""
    version = 0
    calls = 0
    seq = itertools.count()
    everyone = [_Client(backoff.delays(random.Random(rng.random()))) for _ in range(clients)]
    events: list[tuple[float, int, int, _Step]] = []

    def send(at: float, who: int, step: _Step) -> None:
        heapq.heappush(events, (at + network.delay(rng), next(seq), who, step))

    for who in range(clients):
        send(0.0, who, _Step.READ)
    now = 0.0
    while events:
        now, _, who, step = heapq.heappop(events)
        client = everyone[who]
        match step:
            case _Step.READ:
                client.version_read = version
                send(now, who, _Step.READ_ANSWERED)
            case _Step.READ_ANSWERED:
                send(now, who, _Step.WRITE)
            case _Step.WRITE:
                calls += 1
                client.succeeded = client.version_read == version
                version += client.succeeded
                send(now, who, _Step.WRITE_ANSWERED)
            case _Step.WRITE_ANSWERED if not client.succeeded:
                send(now + next(client.sleeps), who, _Step.READ)
    return Contention(calls, now)


def average(trials: int, run: Callable[[random.Random], Contention], seed: int) -> Contention:
    """Return the mean calls and completion time of `trials` runs, seeded from `seed`."""
    rng = random.Random(seed)
    outcomes = [run(random.Random(rng.random())) for _ in range(trials)]
    return Contention(
        round(sum(o.calls for o in outcomes) / trials),
        sum(o.completion_s for o in outcomes) / trials,
    )
