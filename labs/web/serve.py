"""Serving an app for real inside this process: uvicorn on a free loopback port, in a thread.

Tests, demos and benchmarks talk to the app over TCP with its lifespan run, exactly
as clients will; the thread has its own event loop, so synchronous callers (httpx,
schemathesis, Locust) can use it too.
"""

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from labs.servers.process import free_port

_START_TIMEOUT_S = 30.0
KEEP_ALIVE_S = 75


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """Run `app` under uvicorn until the block ends; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # Longer than any pause between a client's requests here: uvicorn's 5 s default
        # lets the server close an idle pooled connection just as the client reuses it.
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve())
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    started = threading.Event()
    while not started.wait(0.01):
        if server.started:
            started.set()
        elif not thread.is_alive():
            raise RuntimeError(f"the app did not start: {failure[0] if failure else 'see log'}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(_START_TIMEOUT_S)
