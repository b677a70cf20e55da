"""A TCP proxy that adds latency: the network between two regions, on one machine.

Pattern: a loopback forwarder in the spirit of Linux netem (which needs root), for
experiments that must feel distance. Each direction of each connection gets a fixed
one-way delay; bytes keep their order, and a chunk read at time t is written at
t + delay, so a request-reply round trip through the proxy costs two delays on top
of the server's own time. The failure it lets an experiment handle: claims about
multi-region behaviour measured with zero latency, which would prove nothing.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

_CHUNK = 64 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Copy `reader` to `writer`, each chunk `delay_s` after it was read, in order."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await queue.get()
            if not chunk:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()

    deliverer = asyncio.create_task(deliver())
    try:
        while chunk := await reader.read(_CHUNK):
            queue.put_nowait((time.monotonic() + delay_s, chunk))
    except ConnectionError:
        pass
    finally:
        queue.put_nowait((0.0, b""))
        with contextlib.suppress(ConnectionError):
            await deliverer
        writer.close()  # half-close: the peer sees the end of this direction


class DelayProxy:
    """Listens on a loopback port and forwards to `target` with `one_way_delay_s` each way."""

    def __init__(self, target_host: str, target_port: int, one_way_delay_s: float) -> None:
        """Forward to `target_host:target_port`."""
        self.target = (target_host, target_port)
        self.delay_s = one_way_delay_s
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def _handle(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(
                _pump(client_reader, server_writer, self.delay_s),
                _pump(server_reader, client_writer, self.delay_s),
            )
        finally:
            for writer in (client_writer, server_writer):
                writer.close()
                with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                    await writer.wait_closed()

    def _track(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._handle(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def start(self) -> None:
        """Start listening on a free loopback port (in `self.port`)."""
        self._server = await asyncio.start_server(self._track, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and cut every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)


@asynccontextmanager
async def delayed(
    target_host: str, target_port: int, one_way_delay_s: float
) -> AsyncIterator[DelayProxy]:
    """Run a `DelayProxy` for the duration of the block."""
    proxy = DelayProxy(target_host, target_port, one_way_delay_s)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
