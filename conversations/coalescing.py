"""Batch a reply's text into numbered deltas for the browser: the first at once, later ones per window.

Sending every upstream chunk as its own websocket frame would cost a channel
layer message, a frame and an htmx swap per token; a window of tens of
milliseconds is invisible to a reader and cuts that work by an order of magnitude.
"""

import asyncio
from collections.abc import Awaitable, Callable

from django.conf import settings

# Replies one process streams at CHAT_COALESCE_MS; with more, each window widens in proportion (`window_s`).
# A reply's delta frames are a third of its server CPU: at 40 ms, 50 replies at once cost 53 to 57 ms of CPU
# each, at 80 ms 45 to 49 (bench/README.md, the fifth round), and one core then serves about 25.
FULL_RATE_REPLIES = 25


def window_s(*, streaming: int) -> float:
    """Return the coalescing window, in seconds, while `streaming` replies stream in this process.

    CHAT_COALESCE_MS for up to FULL_RATE_REPLIES replies; beyond, it widens
    in proportion (50 replies: twice as wide), so the process sends as many
    frames a second as at FULL_RATE_REPLIES replies and keeps up, up to
    CHAT_COALESCE_MAX_MS: a class reads text in steps a few words longer
    rather than later. A window of 0 (every piece its own delta) stays 0.
    """
    base = settings.CHAT_COALESCE_MS / 1000
    widest = max(settings.CHAT_COALESCE_MAX_MS / 1000, base)
    return min(base * max(1.0, streaming / FULL_RATE_REPLIES), widest)


class DeltaCoalescer:
    """Turn text pieces into deltas numbered 1, 2, 3 … and hand them to `send` in order.

    send: coroutine function taking (seq, text); never called concurrently, so
        deltas reach it in seq order.
    window_s: after the first delta (the first piece alone, sent at once, for
        time to first token), text is gathered for this many seconds before
        the next delta goes out: a function, asked as each window starts.

    A caller that reads its upstream once a window (`llm.stream_chat`'s
    `pace_s`) asks `pace` before each wait instead: its text goes out then,
    with no timer of the coalescer's own.

    `seq` and `sent_text` always describe the same deltas (they change
    together, before any await), so a snapshot taken between awaits is consistent.
    `push` never waits for `send`, which runs in tasks of its own: the caller
    reads an upstream response, which must go on being read while a delta is
    sent (a channel layer's round trip), since aiohttp drops what a response
    had not read yet once its connection is lost.
    """

    def __init__(self, send: Callable[[int, str], Awaitable[None]], *, window_s: Callable[[], float]) -> None:
        self._send = send
        self.window_s = window_s
        self.seq = 0
        self._sent: list[str] = []
        self._pending: list[str] = []
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task | None = None
        self._first: asyncio.Task | None = None  # The first delta's send, started by `push`.
        self._paced: asyncio.Task | None = None  # The last delta's send started by `pace`.
        self._reader_paces = False  # `pace` was asked: `push` sets no timer.

    @property
    def sent_text(self) -> str:
        """Return the text of deltas 1..seq."""
        return "".join(self._sent)

    @property
    def text(self) -> str:
        """Return all the text pushed so far, sent or not."""
        return "".join(self._sent) + "".join(self._pending)

    def push(self, text: str) -> None:
        """Add `text`: the first piece is numbered delta 1 now and sent in a task, later text with the next window."""
        self._pending.append(text)
        if self.seq == 0:
            self._first = asyncio.create_task(self._send_in_turn(*self._take()))
        elif self._timer is None and not self._reader_paces:
            self._timer = asyncio.create_task(self._flush_later())

    def pace(self) -> float:
        """Start sending the pending text as one delta, and return the window: for a reader about to wait that long.

        The text a reader pushed since it last asked goes out at once, and
        from now on `push` leaves the timing to the reader (no timer): a
        window's chunks, read together after the wait, cost the loop one
        wake-up rather than the reader's and a timer's (bench/README.md, the
        twenty-third round).
        """
        self._reader_paces = True
        if self._timer is not None:  # Set by text pushed before the reader first asked.
            self._timer.cancel()
            self._timer = None
        if self._pending:
            self._paced = asyncio.create_task(self._send_in_turn(*self._take()))
        return self.window_s()

    async def flush(self) -> None:
        """Send what is pending now, as one delta (nothing when nothing is pending)."""
        if self._pending:
            await self._send_in_turn(*self._take())

    async def close(self) -> None:
        """Send what is pending, and return once every delta is sent; call once, when the reply ends."""
        if self._timer is not None:  # Still waiting (it clears `_timer` before it flushes): its text goes now.
            self._timer.cancel()
            self._timer = None
        if self._paced is not None:  # It may not have started, so not queued for the lock yet.
            await asyncio.wait([self._paced])
        await self.flush()
        if self._first is not None:
            await asyncio.wait([self._first])
        async with self._lock:  # The sends of earlier flushes, still under way, have ended.
            pass

    def _take(self) -> tuple[int, str]:
        """Number the pending text as the next delta; return (seq, text)."""
        text = "".join(self._pending)
        self._pending.clear()
        self.seq += 1
        self._sent.append(text)
        return self.seq, text

    async def _send_in_turn(self, seq: int, text: str) -> None:
        if seq > 1 and self._first is not None:  # Its task may not have started yet: it still goes first.
            await asyncio.wait([self._first])
        async with self._lock:
            await self._send(seq, text)

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.window_s())
        self._timer = None
        await self.flush()
