"""The chaos experiment's worker processes: start them, SIGKILL one, restart them in turn.

Pattern: each worker is a real `python -m scheduler.worker` process, started and
stopped through `labs.servers.process` (its own session, reaped, never a reused pid).
A kill is a freeze, a snapshot, then SIGKILL: SIGSTOP stops the victim at once, a
short pause lets any command it had already sent reach Redis, its leases are read
(the jobs in flight at the kill: a frozen worker can neither claim nor ack), then
SIGKILL ends it and the leases are read once more, for a claim that was still in
transit (the leases stay put until they expire, 2/3 of a lease after the last
heartbeat at the earliest). A rolling restart starts each replacement, then sends the
old worker SIGTERM and waits for it to drain (stop fetching, finish in-flight jobs
within the grace, hand back the rest). Guarantee: every process this starts is
stopped by `stop_all`, also when the experiment fails.
"""

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from labs.paths import project_root
from labs.servers import process
from scheduler.experiments.checker import Kill
from scheduler.queue import RedisQueue

HANDLERS = "scheduler.experiments.ledger:handlers"
FREEZE_S = 0.2
"""Between SIGSTOP and reading the leases: commands the victim had already written to
its sockets reach Redis first (on a loaded machine Redis may not run for a while)."""
KILL_WAIT_S = 5.0


class WorkerExitedError(Exception):
    """A worker process exited that nobody stopped."""


@dataclass(frozen=True)
class WorkerProcess:
    """A running worker: the id its leases name, and its process."""

    id: str
    pid: int
    started_at: float


@dataclass(frozen=True)
class WorkerOptions:
    """How every worker of a run is started."""

    redis_url: str
    database_url: str
    prefix: str
    queue: str
    concurrency: int
    lease_ms: int
    grace_s: float
    retry_base_ms: int
    retry_cap_ms: int

    def command(self, worker_id: str) -> list[str]:
        """Return the command line of the worker called `worker_id`."""
        return [
            sys.executable,
            "-m",
            "scheduler.worker",
            *("--redis-url", self.redis_url, "--database-url", self.database_url),
            *("--prefix", self.prefix, "--queue", self.queue, "--worker-id", worker_id),
            *("--concurrency", str(self.concurrency), "--lease-ms", str(self.lease_ms)),
            *("--grace-s", str(self.grace_s), "--handlers", HANDLERS),
            *("--retry-base-ms", str(self.retry_base_ms)),
            *("--retry-cap-ms", str(self.retry_cap_ms)),
        ]


class WorkerProcesses:
    """The live workers of one run, their logs under `log_dir`."""

    def __init__(self, options: WorkerOptions, queue: RedisQueue, log_dir: Path) -> None:
        """Start workers with `options`; read their leases through `queue`."""
        self._options = options
        self._queue = queue
        self._log_dir = log_dir
        self._started = 0
        self.live: list[WorkerProcess] = []

    def start(self) -> WorkerProcess:
        """Start one more worker and return it."""
        self._started += 1
        worker_id = f"w{self._started}"
        child = process.spawn(
            self._options.command(worker_id), project_root(), self._log_dir / f"{worker_id}.log"
        )
        started_at = process.process_start_time(child.pid) or time.time()
        worker = WorkerProcess(id=worker_id, pid=child.pid, started_at=started_at)
        self.live.append(worker)
        return worker

    def serving(self, working: set[int]) -> list[WorkerProcess]:
        """Return the live workers whose process ids are in `working` (they ran jobs)."""
        return [worker for worker in self.live if worker.pid in working]

    async def connected(self, worker: WorkerProcess) -> bool:
        """Return whether `worker` has connected to Redis (it names its connections)."""
        clients = await self._queue.redis.client_list()
        return any(client.get("name") == worker.id for client in clients)

    def check(self) -> None:
        """Raise `WorkerExitedError` if a live worker exited by itself (it crashed at start)."""
        for worker in self.live:
            if not process.is_alive(worker.pid, worker.started_at):
                log = self._log_dir / f"{worker.id}.log"
                raise WorkerExitedError(
                    f"worker {worker.id} exited: {process.last_error_line(log)} [log: {log}]"
                )

    async def kill(self, victim: WorkerProcess) -> Kill:
        """Freeze `victim`, read the leases it holds, SIGKILL it; return the record."""
        os.kill(victim.pid, signal.SIGSTOP)
        frozen_at = time.time()
        await asyncio.sleep(FREEZE_S)
        in_flight = await self._queue.held_by(victim.id)
        backlog = (await self._queue.counts()).ready
        await asyncio.to_thread(
            process.stop, victim.pid, victim.started_at, signal.SIGKILL, KILL_WAIT_S
        )
        self.live.remove(victim)
        # A claim still in transit lands late; its lease cannot expire for 2/3 of a lease.
        in_flight |= await self._queue.held_by(victim.id)
        return Kill(
            at=frozen_at,
            worker=victim.id,
            pid=victim.pid,
            in_flight=frozenset(in_flight),
            backlog=backlog,
        )

    async def terminate(self, worker: WorkerProcess) -> float:
        """SIGTERM `worker` and wait until it has drained and exited; return the seconds."""
        started = time.monotonic()
        await asyncio.to_thread(
            process.stop, worker.pid, worker.started_at, signal.SIGTERM, self._drain_limit_s
        )
        self.live.remove(worker)
        return time.monotonic() - started

    async def stop_all(self) -> None:
        """Drain every live worker at once (SIGKILL only past the grace)."""
        await asyncio.gather(*(self.terminate(worker) for worker in list(self.live)))

    @property
    def _drain_limit_s(self) -> float:
        """The grace plus time to hand back leases and flush the audit trail."""
        return self._options.grace_s + 10.0
