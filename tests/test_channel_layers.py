"""The one-process channel layer (chatsite/channel_layers.py): Channels' in-memory semantics, cheaper sends."""

import asyncio

import pytest
from channels.exceptions import ChannelFull

from chatsite import channel_layers
from chatsite.channel_layers import LocalChannelLayer


def run(coroutine):
    return asyncio.run(coroutine)


def test_group_send_reaches_every_member_and_only_them():
    async def scenario():
        layer = LocalChannelLayer()
        a, b, outsider = [await layer.new_channel() for _ in range(3)]
        await layer.group_add("chat", a)
        await layer.group_add("chat", b)
        await layer.group_send("chat", {"type": "reply.delta", "text": "hi"})
        received = [await layer.receive(a), await layer.receive(b)]
        await layer.send(outsider, {"type": "other"})
        return received, await layer.receive(outsider)

    received, other = run(scenario())
    assert received == [{"type": "reply.delta", "text": "hi"}] * 2
    assert other == {"type": "other"}


def test_a_receiver_gets_its_own_copy():
    async def scenario():
        layer = LocalChannelLayer()
        channel = await layer.new_channel()
        message = {"type": "reply.delta", "text": "hi"}
        await layer.send(channel, message)
        message["text"] = "changed"
        return await layer.receive(channel)

    assert run(scenario())["text"] == "hi"


def test_a_full_channel_refuses_a_send_and_is_skipped_by_group_send():
    async def scenario():
        layer = LocalChannelLayer(capacity=2)
        full, free = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("chat", full)
        await layer.group_add("chat", free)
        for _ in range(2):
            await layer.send(full, {"type": "x"})
        with pytest.raises(ChannelFull):
            await layer.send(full, {"type": "x"})
        await layer.group_send("chat", {"type": "y"})
        return layer.channels[full].qsize(), await layer.receive(free)

    assert run(scenario()) == (2, {"type": "y"})


def test_expired_messages_and_memberships_still_go_but_the_scan_runs_once_per_interval(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(channel_layers.time, "monotonic", lambda: clock[0])

    async def scenario():
        layer = LocalChannelLayer(expiry=60)
        stale = await layer.new_channel()
        await layer.group_add("chat", stale)
        await layer.send(stale, {"type": "old"})
        layer.channels[stale]._queue[0] = (0.0, {"type": "old"})  # Expired long ago.
        await layer.group_send("chat", {"type": "first"})  # The first send scans: the stale channel goes.
        gone_after_first = stale not in layer.groups.get("chat", {})
        await layer.group_add("chat", stale)
        await layer.send(stale, {"type": "old"})
        layer.channels[stale]._queue[0] = (0.0, {"type": "old"})
        await layer.group_send("chat", {"type": "second"})  # Within the interval: no scan, still a member.
        kept_within_interval = stale in layer.groups["chat"]
        clock[0] += channel_layers.CLEAN_INTERVAL_S
        await layer.group_send("chat", {"type": "third"})
        return gone_after_first, kept_within_interval, stale not in layer.groups.get("chat", {})

    assert run(scenario()) == (True, True, True)
