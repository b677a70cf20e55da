"""The processes `lab serve idempotency` runs beside the API: its provider and its chargers.

Pattern: when `IDEMPOTENCY_PROVIDER_URL` is not set, the API's lifespan starts the
payment provider (`python -m labs serve payment-provider` on a free port) and waits
for its `/healthz`; it then starts `IDEMPOTENCY_CHARGERS` outbox chargers
(`python -m idempotency.charger`), the same commands a person or compose runs. Each
child gets the API's server URLs, runs in its own process group, and logs to
`<state dir>/logs/`.

Guarantee: no child outlives the API. A clean exit stops them with SIGTERM (the
chargers drain), then SIGKILL after a grace. An API killed outright — by an injected
crash point, or by `kill -9` — cannot run that code, so every child also asks the
kernel (`prctl(PR_SET_PDEATHSIG)`) to send it SIGTERM when its parent dies.
"""

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from idempotency.settings import IdempotencySettings
from labs.paths import state_dir
from labs.servers.process import free_port, process_start_time, stop, wait_until_healthy
from labs.settings import ServerUrls

_PR_SET_PDEATHSIG = 1
_START_TIMEOUT_S = 60.0
_GRACE_S = 10.0
_URL_VARIABLES = {
    "redis_url": "REDIS_URL",
    "database_url": "DATABASE_URL",
    "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
}


def _stop_with_parent() -> None:
    """Run in the child before exec: have the kernel SIGTERM it when its parent dies."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - the lab's own commands
            [sys.executable, *command],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_stop_with_parent,  # noqa: PLW1509 - prctl only; no locks taken
        )


async def _stop(child: subprocess.Popen[bytes]) -> None:
    started_at = process_start_time(child.pid)
    if started_at is not None:
        await asyncio.to_thread(stop, child.pid, started_at, signal.SIGTERM, _GRACE_S)
    await asyncio.to_thread(child.wait)


async def _healthy(url: str) -> str:
    async with httpx.AsyncClient(timeout=2.0) as http:
        (await http.get(f"{url}/healthz")).raise_for_status()
    return url


@asynccontextmanager
async def provider_and_chargers(
    settings: IdempotencySettings, urls: ServerUrls
) -> AsyncIterator[str]:
    """Yield the provider's URL — the configured one, or a child's — with the chargers running."""
    env = dict(os.environ) | {
        variable: value
        for field, variable in _URL_VARIABLES.items()
        if (value := getattr(urls, field))
    }
    logs = state_dir() / "logs"
    children: list[subprocess.Popen[bytes]] = []
    try:
        provider_url = settings.provider_url
        if provider_url is None:
            port = free_port()
            log_path = logs / f"payment-provider-{port}.log"
            command = ["-m", "labs", "serve", "payment-provider", "--port", str(port)]
            children.append(_start(command, env, log_path))
            provider_url = f"http://127.0.0.1:{port}"
            await wait_until_healthy(
                "the payment provider",
                children[-1],
                log_path,
                lambda: _healthy(f"http://127.0.0.1:{port}"),
                _START_TIMEOUT_S,
            )
        charger_env = env | {"IDEMPOTENCY_PROVIDER_URL": provider_url}
        children += [
            _start(["-m", "idempotency.charger"], charger_env, logs / f"charger-{os.getpid()}.log")
            for _ in range(settings.chargers)
        ]
        yield provider_url
    finally:
        await asyncio.gather(*map(_stop, children))
