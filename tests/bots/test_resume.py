"""A site that stops mid-reply finishes the reply after it restarts: nothing lost, nothing sent twice."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from bots import replies
from bots.models import Delivery
from conversations import generation
from conversations.models import Message
from tests.bots.conftest import FEISHU_TOKEN
from tests.bots.test_feishu import deliveries_done, message_in, post_event
from tests.bots.test_wechat import post_message
from tests.fakes.feishu_server import message_event
from tests.fakes.wechat_server import text_xml
from tests.waiting import async_wait_until

pytestmark = pytest.mark.django_db(transaction=True)


async def stop_the_process() -> None:
    """Cancel every answer and generation of this process, as a restart would, and age what they left."""
    tasks = [*replies._running, *generation._running]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    long_ago = timezone.now() - timedelta(minutes=10)
    await Delivery.objects.aupdate(updated_at=long_ago)
    await Message.objects.filter(status=Message.Status.STREAMING).aupdate(heartbeat_at=long_ago)


async def test_a_feishu_card_left_mid_reply_is_finished_in_place(site, feishu_channel, feishu_server, make_persona):
    feishu_channel.persona = await sync_to_async(make_persona)("long:400+delay:20", slug="slow")
    await feishu_channel.asave(update_fields=["persona"])
    first = message_event(text="a long one", token=FEISHU_TOKEN)
    await post_event(site, feishu_channel, first)
    await async_wait_until(lambda: feishu_server.replies_to(message_in(first)), timeout_s=20)
    await async_wait_until(
        lambda: Message.objects.filter(status="streaming").exclude(content="").aexists(), timeout_s=20
    )

    await stop_the_process()
    feishu_channel.persona = await sync_to_async(make_persona)("fake-echo", slug="quick")
    await feishu_channel.asave(update_fields=["persona"])
    await post_event(site, feishu_channel, message_event(text="after the restart", token=FEISHU_TOKEN))
    await async_wait_until(deliveries_done, timeout_s=20)

    [card] = feishu_server.replies_to(message_in(first))  # the same card, no second one
    interrupted = await Message.objects.aget(status=Message.Status.INTERRUPTED)
    assert interrupted.content and card.markdown().startswith(interrupted.content.rstrip())
    assert interrupted.error_text in card.markdown()


async def test_a_wechat_reply_left_unsent_is_sent_once_after_a_restart(
    site, wechat_channel, wechat_server, make_persona, settings
):
    settings.BOTS_WECHAT_PASSIVE_WAIT_MS = 0
    wechat_channel.persona = await sync_to_async(make_persona)("long:400+delay:20", slug="slow")
    await wechat_channel.asave(update_fields=["persona"])
    await post_message(site, wechat_channel, text_xml(text="a long one", open_id="o_a"))
    await async_wait_until(
        lambda: Message.objects.filter(status="streaming").exclude(content="").aexists(), timeout_s=20
    )

    await stop_the_process()
    assert wechat_server.sent == []
    wechat_channel.persona = await sync_to_async(make_persona)("fake-echo", slug="quick")
    await wechat_channel.asave(update_fields=["persona"])
    await post_message(site, wechat_channel, text_xml(text="hello again", open_id="o_b"))
    await async_wait_until(lambda: [m for m in wechat_server.sent if m.touser == "o_a"], timeout_s=20)
    await async_wait_until(deliveries_done, timeout_s=20)
    await post_message(site, wechat_channel, text_xml(text="and again", open_id="o_b"))
    await async_wait_until(deliveries_done, timeout_s=20)

    resent = [m for m in wechat_server.sent if m.touser == "o_a"]
    assert len(resent) == 1 and resent[0].content.startswith("w0 w1")
