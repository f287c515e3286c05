"""The channel layer of a one-process site: Channels' in-memory layer, with sends that cost O(receivers).

Channels' `InMemoryChannelLayer` scans every channel's queue and every
group's members for expired entries on each `send`, `receive` and
`group_send`, and deep-copies each message once per receiver. With a hundred
open tabs and a hundred replies streaming, those scans were the largest
single cost of the server after the SDK (bench/load.py with py-spy: about a
sixth of the event loop's time). Here the scan runs at most once per
`CLEAN_INTERVAL_S`, and a message is copied shallowly: events.py's events
are flat dicts of strings and numbers, which nobody mutates.

Messages still expire after `expiry` seconds and group memberships after
`group_expiry`, only noticed up to `CLEAN_INTERVAL_S` later. A full channel
still refuses a message (`ChannelFull`, dropped by `group_send` as Channels
does); the consumer notices the gap in a reply's deltas and asks for the
text so far (consumers.py).
"""

import asyncio
import contextlib
import time

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

CLEAN_INTERVAL_S = 1.0


class LocalChannelLayer(InMemoryChannelLayer):
    """An in-memory channel layer (one process) whose sends do not scan every channel."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._cleaned_at = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._cleaned_at >= CLEAN_INTERVAL_S:
            self._cleaned_at = now
            super()._clean_expired()  # type: ignore[misc]  # Channels' stubs leave out this private method.

    async def send(self, channel: str, message: dict) -> None:
        """Put a shallow copy of `message` on `channel`'s queue. Raises: ChannelFull at capacity."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            queue.put_nowait((time.time() + self.expiry, dict(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def group_send(self, group: str, message: dict) -> None:
        """Send `message` to every channel of `group`, skipping full ones (as Channels' layers do)."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)
