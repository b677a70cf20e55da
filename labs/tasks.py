"""Background tasks tied to a lifespan, and the stop signals a long-running process obeys.

`background` starts tasks on entry and cancels and awaits them on exit;
`on_stop_signals` routes SIGTERM and SIGINT to a handler for the duration of a block.
"""

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@asynccontextmanager
async def background(*coroutines: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run `coroutines` as tasks for the duration of the block, then cancel them."""
    tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextmanager
def on_stop_signals(handler: Callable[[], object]) -> Iterator[None]:
    """Call `handler` on SIGTERM or SIGINT while the block runs (asyncio's loop handlers)."""
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, handler)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
