"""Calls that queue while the thread running the ORM is busy, taken together in its next hop (`HopBatcher`)."""

import asyncio
import logging
import threading
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
    """The calls waiting in one event loop, and the task taking them to the ORM thread (None when idle).

    The event loop appends to `waiting` and the ORM thread takes from it (`Hop.more`): both under `lock`.
    """

    waiting: list[tuple[Item, "asyncio.Future[Outcome]"]] = field(default_factory=list)
    task: "asyncio.Task[None] | None" = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, count: int) -> list[tuple[Item, "asyncio.Future[Outcome]"]]:
        """Remove and return the first `count` calls waiting, in the order they came."""
        with self.lock:
            taken = self.waiting[:count]
            del self.waiting[:count]
        return taken


class Hop(Generic[Item, Outcome]):
    """The calls one hop takes: those waiting when it was sent to the ORM thread, and those `more` takes on it."""

    def __init__(self, queue: _Queue[Item, Outcome], max_size: int) -> None:
        self._queue = queue
        self._max_size = max_size
        self.calls = queue.take(max_size)

    @property
    def items(self) -> list[Item]:
        """The items of the calls taken so far, in the order they came."""
        return [item for item, _future in self.calls]

    def more(self) -> list[Item]:
        """Take into this hop the calls queued since it last took (up to `max_size` in all); return their items.

        Called by `handle` on the ORM thread, before it writes anything: a
        class's sends arrive over 10 to 30 ms, and those that came while the
        hop started (its sign-in checks) go in it instead of waiting for it and
        the starts of its replies in the next one (bench/README.md, the
        twentieth round). `handle` returns an outcome for each of them too.
        """
        late = self._queue.take(self._max_size - len(self.calls))
        self.calls += late
        return [item for item, _future in late]


class HopBatcher(Generic[Item, Outcome]):
    """Run `handle(hop)` on the thread that runs the ORM for the items of the calls that queue meanwhile.

    `await batcher(item)` returns the outcome `handle` gives `item`, or
    raises it when it is an exception. A call that comes when no hop is
    running starts one at once, for itself alone; calls that come while a
    hop runs wait for it and go together in the next one, at most
    `max_size` at a time, in the order they came, unless the running hop
    takes them (`Hop.more`). So a lone call waits for nothing more than
    before, and a hundred calls at once take a few hops instead of a
    hundred, `handle` doing each kind of statement once per hop
    (`services.replies_request`; bench/README.md, the sixth round).

    handle: takes the hop, returns one outcome per item of `hop.items` once
        it is done taking (`Hop.more`), in the same order: a result or an
        exception (the caller's to raise). An exception raised by `handle`
        itself is raised to every call of that hop.
    settle: awaited with a hop's outcomes once they are handed to their
        callers, before the next hop when calls wait for one: what the
        callers do with them first (`consumers`: the replies the hop's sends
        start) does not share the interpreter lock with that hop.
    """

    def __init__(
        self,
        handle: Callable[[Hop[Item, Outcome]], Sequence[Outcome | Exception]],
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
        with queue.lock:
            queue.waiting.append((item, future))
        if queue.task is None:
            queue.task = loop.create_task(self._drain(queue))
        return await future

    async def _drain(self, queue: _Queue[Item, Outcome]) -> None:
        try:
            while queue.waiting:
                hop = Hop(queue, self._max_size)
                try:
                    outcomes: Sequence[Outcome | Exception] = await self._handle(hop)
                except Exception as exc:
                    outcomes = [exc] * len(hop.calls)
                for (_, future), outcome in zip(hop.calls, outcomes, strict=True):
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
