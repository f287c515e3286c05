"""Wait for a condition with a deadline, instead of sleeping for a guessed while.

    wait_until(lambda: Message.objects.filter(...).exists())          # sync code
    await async_wait_until(lambda: socket_is_closed(), timeout_s=5)    # async code; the predicate may be async

Both poll every `interval_s` and return the predicate's first truthy value,
or raise `TimeoutError` (naming `message`) once `timeout_s` have passed. The
deadline is a bound on a failing test, not part of what a test checks: a
passing test returns as soon as the condition holds.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


def wait_until(
    predicate: Callable[[], Any], *, timeout_s: float = 10, interval_s: float = 0.02, message: str = ""
) -> Any:
    """Call `predicate` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(message or f"still false after {timeout_s} s: {predicate!r}")
        time.sleep(interval_s)


async def async_wait_until(
    predicate: Callable[[], Any | Awaitable[Any]],
    *,
    timeout_s: float = 10,
    interval_s: float = 0.02,
    message: str = "",
) -> Any:
    """Call (and await, if it is a coroutine function) `predicate` until it gives something truthy; return that."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(message or f"still false after {timeout_s} s: {predicate!r}")
        await asyncio.sleep(interval_s)
