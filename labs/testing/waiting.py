"""Waiting for an event in a test: poll a condition, never sleep for time to pass.

A test that needs another task or process to make progress polls for the effect it
expects; the timeout only bounds a hang, it is never what the test waits for.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    """Return once `condition()` holds; fail naming `what` after `timeout_s` of no progress."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def until_awaited(
    condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 5.0
) -> None:
    """Return once `await condition()` holds (a server round trip); fail as `until` does."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
