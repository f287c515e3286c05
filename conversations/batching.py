"""Calls that queue while the thread running the ORM is busy, taken together in its next hop (`HopBatcher`)."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from weakref import WeakKeyDictionary

from channels.db import database_sync_to_async

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

logger = logging.getLogger(__name__)


@dataclass
class _Queue(Generic[Item, Outcome]):
    """The calls waiting in one event loop, and the task taking them to the ORM thread (None when idle)."""

    waiting: list[tuple[Item, "asyncio.Future[Outcome]"]] = field(default_factory=list)
    task: "asyncio.Task[None] | None" = None


class HopBatcher(Generic[Item, Outcome]):
    """Run `handle(items)` on the thread that runs the ORM for the items of the calls that queue meanwhile.

    `await batcher(item)` returns the outcome `handle` gives `item`, or
    raises it when it is an exception. A call that comes when no hop is
    running starts one at once, for itself alone; calls that come while a
    hop runs wait for it and go together in the next one, at most
    `max_size` at a time, in the order they came. So a lone call waits for
    nothing more than before, and a hundred calls at once take a few hops
    instead of a hundred, `handle` doing each kind of statement once per hop
    (`services.replies_request`; bench/README.md, the sixth round).

    handle: takes the items, returns one outcome per item in the same order:
        a result or an exception (the caller's to raise). An exception
        raised by `handle` itself is raised to every call of that hop.
    settle: awaited with a hop's outcomes once they are handed to their
        callers, before the next hop when calls wait for one: what the
        callers do with them first (`consumers`: the replies the hop's sends
        start) does not share the interpreter lock with that hop.
    """

    def __init__(
        self,
        handle: Callable[[list[Item]], Sequence[Outcome | Exception]],
        *,
        max_size: int,
        settle: Callable[[Sequence[Outcome | Exception]], Awaitable[None]] | None = None,
    ) -> None:
        self._handle = database_sync_to_async(handle)
        self._max_size = max_size
        self._settle = settle
        # One queue per event loop: a test's loop ends with its futures, the next starts afresh.
        self._queues: WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue[Item, Outcome]] = WeakKeyDictionary()

    async def __call__(self, item: Item) -> Outcome:
        loop = asyncio.get_running_loop()
        queue = self._queues.setdefault(loop, _Queue())
        future: asyncio.Future[Outcome] = loop.create_future()
        queue.waiting.append((item, future))
        if queue.task is None:
            queue.task = loop.create_task(self._drain(queue))
        return await future

    async def _drain(self, queue: _Queue[Item, Outcome]) -> None:
        try:
            while queue.waiting:
                batch = queue.waiting[: self._max_size]
                del queue.waiting[: self._max_size]
                try:
                    outcomes: Sequence[Outcome | Exception] = await self._handle([item for item, _ in batch])
                except Exception as exc:
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # Its caller was cancelled (the socket closed).
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                if self._settle is not None and queue.waiting:
                    try:
                        await self._settle(outcomes)
                    except Exception:  # The calls waiting still get their hop.
                        logger.exception("Settling a hop's outcomes failed")
        finally:
            queue.task = None
