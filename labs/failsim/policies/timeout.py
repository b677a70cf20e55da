"""A timeout on the injected clock: the attempt races the clock's sleep.

Pattern: `within(clock, seconds, call)` runs the call and `clock.sleep(seconds)` as
two tasks; whichever ends first wins, and the other is cancelled and awaited. On the
system clock this is an ordinary timeout; on a `ManualClock` a test decides when it
fires, so a hung attempt is tested without waiting for it.

Guarantee: the call is cancelled (and has finished cancelling) before
`AttemptTimedOutError` is raised, so nothing it holds — a bulkhead slot, a breaker
probe, a pooled connection — outlives the timeout.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from labs.clock import Clock
from labs.failsim.policies.errors import AttemptTimedOutError

T = TypeVar("T")


async def within(clock: Clock, seconds: float, call: Callable[[], Awaitable[T]]) -> T:
    """Return `call()`'s result, or raise `AttemptTimedOutError` after `seconds` on `clock`."""

    async def run() -> T:
        return await call()

    work = asyncio.ensure_future(run())
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait((work, timer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, timer):
            if not task.done():
                task.cancel()
        for task in (work, timer):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait((task,))
    if work.done() and not work.cancelled():
        return work.result()
    raise AttemptTimedOutError(seconds)
