"""Finish what a stopped process left: deliveries recorded but not answered, replies shown only in part.

Two runs: after each callback of a channel (its deliveries), and in every
process that serves the site from its start (`resume_when_serving`, called by
`BotsConfig.ready`): a sweep of every enabled channel at once, then every
`settings.CHAT_STALE_AFTER_S` (what a process that died just before the
restart left is stale by then), so a restarted site finishes them without
waiting for a new message. A delivery counts as left behind when it has not
changed for `CHAT_STALE_AFTER_S` and its reply (if any) is no longer being
written by a live worker (its heartbeat is as old). Each is claimed by one
conditional UPDATE, so two processes never both finish it; what was already
sent (`Delivery.parts`) is not sent again: Feishu cards are completed in
place, WeChat sends only the missing parts. The deliveries claimed together
are finished concurrently: one waiting behind another would grow stale again.
A delivery that cannot be finished (the platform refusing after the retries)
is logged and marked done, so no sweep tries it forever.
"""

import asyncio
import logging
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from bots import feishu_bot, replies, services, wechat_bot
from bots.models import BotChannel, Delivery
from conversations import serving
from conversations.models import Message

logger = logging.getLogger(__name__)

# Deliveries claimed by one query; a sweep claims again until fewer come back.
CLAIM_BATCH = 20

_sweeping = False  # Whether this process's sweep was scheduled (`resume_when_serving`).


@database_sync_to_async
def _claim_stale(channel: BotChannel | None) -> list[Delivery]:
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.CHAT_STALE_AFTER_S)
    where = Q(channel=channel) if channel is not None else Q(channel__enabled=True)
    candidates = (
        Delivery.objects.select_related("channel__persona", "reply")
        .filter(where, state__in=[Delivery.State.RECEIVED, Delivery.State.REPLYING], updated_at__lt=cutoff)
        .exclude(Q(reply__status=Message.Status.STREAMING) & Q(reply__heartbeat_at__gte=cutoff))
    )
    claimed = []
    for delivery in candidates[:CLAIM_BATCH]:
        if Delivery.objects.filter(pk=delivery.pk, updated_at=delivery.updated_at).update(updated_at=now):
            delivery.updated_at = now
            claimed.append(delivery)
    return claimed


async def resume_stale(*, channel: BotChannel | None = None) -> int:
    """Finish the deliveries a stopped process left, of `channel` or (None) of every enabled channel.

    Returns how many were taken up. One that cannot be finished is logged and
    given up; a database error raises.
    """
    total = 0
    while True:
        deliveries = await _claim_stale(channel)
        await asyncio.gather(*(_finish_logged(delivery) for delivery in deliveries))
        total += len(deliveries)
        if len(deliveries) < CLAIM_BATCH:
            return total


async def sweep_forever() -> None:
    """Finish every channel's left deliveries now, then every `settings.CHAT_STALE_AFTER_S` until cancelled."""
    while True:
        try:
            await resume_stale()
        except Exception:  # The database unreachable for a while: the next sweep tries again.
            logger.exception("Looking for deliveries left by a stopped process failed")
        await asyncio.sleep(settings.CHAT_STALE_AFTER_S)


def resume_when_serving() -> bool:
    """Schedule `sweep_forever` on the server's loop if this process serves the site; return whether it was.

    Once per process, and only where `conversations.serving.serves_site`
    says so: never in tests, `migrate`, `makemigrations` or other commands.
    """
    global _sweeping
    if _sweeping or not serving.serves_site():
        return False
    _sweeping = True
    serving.at_start(lambda: replies.start_background(sweep_forever()))
    return True


async def _finish_logged(delivery: Delivery) -> None:
    """Finish `delivery`; when that fails (after the API calls' own retries), log it and mark it done.

    One try per delivery, as for a new event (`feishu_bot.handle`): a card
    deleted or a channel whose credentials were revoked does not come back
    every sweep.
    """
    logger.info("Finishing delivery %s left by a stopped process", delivery.pk)
    try:
        await _finish(delivery)
    except Exception:
        logger.exception("Could not finish delivery %s; giving it up", delivery.pk)
        await database_sync_to_async(services.delivery_update)(delivery=delivery, state=Delivery.State.DONE, payload={})


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
