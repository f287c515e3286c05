"""A Feishu or Lark bot channel: take an event callback, then answer in the background with a streamed card.

The callback is answered at once (Feishu wants an answer within 3 s and
retries otherwise); the event is recorded first, keyed by its event_id, so
a retry is answered once. The reply is an interactive card replying to the
person's message, created at the first text and updated in place at most
every `settings.BOTS_STREAM_INTERVAL_MS`, and never sooner than
`CARD_UPDATE_GAP_S` after the card's previous update ended, the final one
included (Feishu refuses more than 5 updates per second of one message,
"更新已发送的消息卡片"); a reply longer than `BOTS_FEISHU_CARD_MAX_CHARS` continues in
further cards. Each card's id is saved as soon as it exists, so a restarted
site finishes the same cards.
"""

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from bots import feishu, replies, services
from bots.models import BotChannel, Delivery
from bots.text import split_text

logger = logging.getLogger(__name__)

# Feishu's "单条消息更新频控为 5 QPS" (PATCH /open-apis/im/v1/messages/:message_id): 1/5 s between updates.
CARD_UPDATE_GAP_S = 0.2


def api_for(channel: BotChannel) -> feishu.FeishuApi:
    """Return the API client of `channel`, on Feishu's or Lark's base URL (settings)."""
    base_url = settings.BOTS_LARK_BASE_URL if channel.kind == BotChannel.Kind.LARK else settings.BOTS_FEISHU_BASE_URL
    return feishu.FeishuApi(
        base_url=base_url,
        app_id=channel.app_id,
        app_secret=channel.app_secret,
        cache_key=f"{channel.pk}:{channel.updated_at.timestamp()}",
    )


class CardSink:
    """Show a reply as cards replying to the person's message (replies.Sink)."""

    def __init__(self, *, api: feishu.FeishuApi, delivery: Delivery) -> None:
        self.api = api
        self.delivery = delivery
        self.parts: list[dict] = list(delivery.parts)
        self._updated_at: dict[str, float] = {}  # card message_id: loop time its last update ended

    async def say(self, text: str) -> None:
        message_id = await self.api.reply_text(message_id=self.delivery.source_message_id, text=text)
        await self._save([*self.parts, {"message_id": message_id, "chars": len(text), "text": True}])

    async def show(self, text: str, *, final: bool) -> None:
        pieces = split_text(text, limit=settings.BOTS_FEISHU_CARD_MAX_CHARS)
        cards = [part for part in self.parts if not part.get("text")]
        for index, piece in enumerate(pieces):
            if index < len(cards):
                card = cards[index]
                if card["chars"] != len(piece) or final:
                    await self._update(card["message_id"], piece)
                    card["chars"] = len(piece)
            else:
                message_id = await self.api.reply_card(message_id=self.delivery.source_message_id, markdown=piece)
                await self._save([*self.parts, {"message_id": message_id, "chars": len(piece)}])
                cards.append(self.parts[-1])
        if final:
            await self._save(self.parts)

    async def _update(self, message_id: str, markdown: str) -> None:
        """Update a card, first waiting until CARD_UPDATE_GAP_S has passed since its previous update ended."""
        loop = asyncio.get_running_loop()
        previous = self._updated_at.get(message_id)
        if previous is not None:
            await asyncio.sleep(max(0.0, previous + CARD_UPDATE_GAP_S - loop.time()))
        await self.api.update_card(message_id=message_id, markdown=markdown)
        self._updated_at[message_id] = loop.time()

    async def _save(self, parts: list[dict]) -> None:
        self.parts = parts
        await database_sync_to_async(services.delivery_update)(delivery=self.delivery, parts=parts)


@database_sync_to_async
def _prepare(delivery: Delivery, message: feishu.IncomingMessage) -> Delivery:
    channel = delivery.channel
    identity = services.identity_get_or_create(
        channel=channel, platform_user_id=message.sender_open_id, union_id=message.sender_union_id
    )
    chat = services.chat_get_or_create(
        channel=channel, chat_id=message.chat_id, is_group=message.is_group, identity=identity
    )
    return services.delivery_update(
        delivery=delivery,
        chat=chat,
        sender_id=message.sender_open_id,
        source_message_id=message.message_id,
        text=message.text or "",
    )


async def handle(*, delivery: Delivery) -> None:
    """Answer a recorded `im.message.receive_v1` event (in the background); mark it done, even when it fails.

    A failure before the answer starts (Feishu unreachable after the retries)
    is logged; the event is not tried again, so one bad event cannot loop.
    """
    try:
        await _handle(delivery)
    except Exception:
        logger.exception("Could not answer Feishu event %s", delivery.event_key)
        await database_sync_to_async(services.delivery_update)(delivery=delivery, state=Delivery.State.DONE, payload={})


async def _handle(delivery: Delivery) -> None:
    api = api_for(delivery.channel)
    payload = delivery.payload
    is_group = ((payload.get("event") or {}).get("message") or {}).get("chat_type") != "p2p"
    bot_open_id = await api.bot_open_id() if is_group else ""
    message = feishu.incoming_message(payload, bot_open_id=bot_open_id)
    if message is None or not message.sender_open_id or (message.is_group and not message.mentions_bot):
        await database_sync_to_async(services.delivery_update)(delivery=delivery, state=Delivery.State.DONE, payload={})
        return
    delivery = await _prepare(delivery, message)
    sink = CardSink(api=api, delivery=delivery)
    await replies.answer(delivery_id=delivery.pk, sink=sink)
