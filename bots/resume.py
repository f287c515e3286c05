"""Finish what a stopped process left: deliveries recorded but not answered, replies shown only in part.

Run in the background after each callback of a channel. A delivery counts as
left behind when it has not changed for `settings.CHAT_STALE_AFTER_S` and its
reply (if any) is no longer being written by a live worker (its heartbeat is
as old). Each is claimed by one conditional UPDATE, so two processes never
both finish it; what was already sent (`Delivery.parts`) is not sent again:
Feishu cards are completed in place, WeChat sends only the missing parts.
"""

import logging
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from bots import feishu_bot, replies, services, wechat_bot
from bots.models import BotChannel, Delivery
from conversations.models import Message

logger = logging.getLogger(__name__)


@database_sync_to_async
def _claim_stale(channel: BotChannel) -> list[Delivery]:
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.CHAT_STALE_AFTER_S)
    candidates = (
        Delivery.objects.select_related("channel__persona", "reply")
        .filter(channel=channel, state__in=[Delivery.State.RECEIVED, Delivery.State.REPLYING], updated_at__lt=cutoff)
        .exclude(Q(reply__status=Message.Status.STREAMING) & Q(reply__heartbeat_at__gte=cutoff))
    )
    claimed = []
    for delivery in candidates[:20]:
        if Delivery.objects.filter(pk=delivery.pk, updated_at=delivery.updated_at).update(updated_at=now):
            delivery.updated_at = now
            claimed.append(delivery)
    return claimed


async def resume_stale(*, channel: BotChannel) -> int:
    """Finish the deliveries of `channel` that a stopped process left; return how many were taken up."""
    deliveries = await _claim_stale(channel)
    for delivery in deliveries:
        logger.info("Finishing delivery %s left by a stopped process", delivery.pk)
        try:
            await _finish(delivery)
        except Exception:
            logger.exception("Could not finish delivery %s", delivery.pk)
    return len(deliveries)


async def _finish(delivery: Delivery) -> None:
    wechat = delivery.channel.kind == BotChannel.Kind.WECHAT
    if delivery.state == Delivery.State.RECEIVED or delivery.reply_id is None:
        if wechat:
            sink = wechat_bot.TextSink(api=wechat_bot.api_for(delivery.channel), delivery=delivery)
            await replies.answer(delivery_id=delivery.pk, sink=sink)
        else:
            await feishu_bot.handle(delivery=delivery)
        return
    text = await replies.reply_text(message_pk=delivery.reply_id)
    if wechat:
        await wechat_bot.TextSink(api=wechat_bot.api_for(delivery.channel), delivery=delivery).show(text, final=True)
    else:
        await feishu_bot.CardSink(api=feishu_bot.api_for(delivery.channel), delivery=delivery).show(text, final=True)
    await database_sync_to_async(services.delivery_update)(delivery=delivery, state=Delivery.State.DONE, payload={})
