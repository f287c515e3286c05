"""A WeChat Official Account channel: take a message callback, answer passively when quick, else by the API.

WeChat waits 5 s for the answer to its POST and retries three times. The
message is recorded first, keyed by its MsgId (events by FromUserName +
CreateTime), so a retry is answered "success" and nothing else. The reply
is generated in the background; the callback waits up to
`settings.BOTS_WECHAT_PASSIVE_WAIT_MS` for it and answers it passively (its
first part, when it is long), else answers "success" and the reply goes
through the customer service message API once ready. Replies are plain text
(`text.markdown_to_plain`) split at `BOTS_WECHAT_MAX_BYTES`; each part sent
is saved at once, so a restarted site sends only what is missing.
"""

import asyncio

from channels.db import database_sync_to_async
from django.conf import settings

from bots import replies, services, wechat
from bots.models import BotChannel, Delivery
from bots.text import markdown_to_plain, split_text, utf8_bytes


def api_for(channel: BotChannel) -> wechat.WeChatApi:
    """Return the API client of `channel`, on settings.BOTS_WECHAT_BASE_URL."""
    return wechat.WeChatApi(
        base_url=settings.BOTS_WECHAT_BASE_URL,
        app_id=channel.app_id,
        app_secret=channel.app_secret,
        cache_key=f"{channel.pk}:{channel.updated_at.timestamp()}",
    )


class TextSink:
    """Send a reply as plain text messages (replies.Sink): the first passively while the callback waits."""

    def __init__(self, *, api: wechat.WeChatApi, delivery: Delivery) -> None:
        self.api = api
        self.delivery = delivery
        # Set by the callback while it can still answer passively; the first part resolves it.
        self.passive: asyncio.Future[str] | None = None

    async def say(self, text: str) -> None:
        await self._send(text)

    async def show(self, text: str, *, final: bool) -> None:
        if final:  # WeChat messages cannot be edited: only the whole reply is sent.
            await self._send(markdown_to_plain(text))

    async def _send(self, text: str) -> None:
        pieces = split_text(text, limit=settings.BOTS_WECHAT_MAX_BYTES, size=utf8_bytes)
        for piece in pieces[len(self.delivery.parts) :]:  # After a restart, the parts already sent are skipped.
            if self.passive is not None and not self.passive.done():
                self.passive.set_result(piece)
                part = {"kind": "passive", "chars": len(piece)}
            else:
                await self.api.send_text(open_id=self.delivery.sender_id, text=piece)
                part = {"kind": "custom", "chars": len(piece)}
            self.passive = None
            await database_sync_to_async(services.delivery_update)(
                delivery=self.delivery, parts=[*self.delivery.parts, part]
            )


def record(*, channel: BotChannel, message: dict[str, str]) -> Delivery | None:
    """Record a text (or other) message of a person once; None when it is a retry of one already recorded."""
    open_id = message.get("FromUserName", "")
    event_key = message.get("MsgId") or f"{open_id}:{message.get('CreateTime', '')}"
    text = message.get("Content", "") if message.get("MsgType") == "text" else ""
    delivery = services.delivery_claim(channel=channel, event_key=event_key, sender_id=open_id, text=text)
    if delivery is None:
        return None
    identity = services.identity_get_or_create(channel=channel, platform_user_id=open_id)
    chat = services.chat_get_or_create(channel=channel, chat_id=open_id, is_group=False, identity=identity)
    return services.delivery_update(delivery=delivery, chat=chat)


async def answer(*, delivery: Delivery) -> str | None:
    """Start answering `delivery`; return the passive reply's text if ready in time, else None (sent later)."""
    sink = TextSink(api=api_for(delivery.channel), delivery=delivery)
    passive: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    sink.passive = passive
    replies.start_background(replies.answer(delivery_id=delivery.pk, sink=sink))
    try:
        return await asyncio.wait_for(asyncio.shield(passive), timeout=settings.BOTS_WECHAT_PASSIVE_WAIT_MS / 1000)
    except TimeoutError:
        sink.passive = None  # From now on the reply goes through the API (same event loop: no race).
        return passive.result() if passive.done() else None
