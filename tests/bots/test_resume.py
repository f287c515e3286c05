"""A site that stops mid-reply finishes the reply after it restarts: nothing lost, nothing sent twice."""

import asyncio
import os
import sys
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps
from django.utils import timezone

from bots import resume
from bots.models import Delivery
from conversations import generation, serving
from conversations.models import Message
from tests.bots.conftest import FEISHU_TOKEN
from tests.bots.test_feishu import deliveries_done, message_in, post_event
from tests.bots.test_wechat import post_message
from tests.fakes.feishu_server import message_event
from tests.fakes.wechat_server import text_xml
from tests.servers import DaphneServer
from tests.waiting import async_wait_until

pytestmark = pytest.mark.django_db(transaction=True)


async def stop_the_process() -> None:
    """Cancel every answer and generation of this process, as a restart would, and age what they left."""
    tasks = [*generation._running]
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
    for card in feishu_server.replies_to(message_in(first)):
        card.update_times.clear()  # Taken up once stale: past the platform's one-second update window.
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


async def leave_a_feishu_card_half_sent(site, feishu_channel, feishu_server, make_persona) -> dict:
    """Start a long reply in a card, then stop the process mid-reply; return the person's event."""
    feishu_channel.persona = await sync_to_async(make_persona)("long:400+delay:20", slug="slow")
    await feishu_channel.asave(update_fields=["persona"])
    event = message_event(text="a long one", token=FEISHU_TOKEN)
    await post_event(site, feishu_channel, event)
    await async_wait_until(lambda: feishu_server.replies_to(message_in(event)), timeout_s=20)
    await async_wait_until(
        lambda: Message.objects.filter(status="streaming").exclude(content="").aexists(), timeout_s=20
    )
    await stop_the_process()
    # A delivery is taken up only once it is CHAT_STALE_AFTER_S old, long after the platform's one-second
    # window of card updates (tests/fakes/feishu_server.py): that window is over by then.
    for card in feishu_server.replies_to(message_in(event)):
        card.update_times.clear()
    return event


async def test_the_sweep_finishes_a_card_left_half_sent_without_a_new_callback(
    site, feishu_channel, feishu_server, make_persona
):
    event = await leave_a_feishu_card_half_sent(site, feishu_channel, feishu_server, make_persona)
    [card] = feishu_server.replies_to(message_in(event))
    updates_before = len(card.updates)

    # What the start-up hook runs; two processes at once (or a sweep and a callback) finish it once.
    taken = await asyncio.gather(resume.resume_stale(), resume.resume_stale())

    assert sorted(taken) == [0, 1]
    assert await deliveries_done()
    [card] = feishu_server.replies_to(message_in(event))  # the same card, no second one
    interrupted = await Message.objects.aget(status=Message.Status.INTERRUPTED)
    assert card.markdown().startswith(interrupted.content.rstrip()) and interrupted.error_text in card.markdown()
    assert len(card.updates) == updates_before + 1  # completed once
    assert await resume.resume_stale() == 0


async def test_a_delivery_the_platform_refuses_to_finish_is_given_up_not_tried_every_sweep(
    site, feishu_channel, feishu_server, make_persona, settings
):
    event = await leave_a_feishu_card_half_sent(site, feishu_channel, feishu_server, make_persona)
    [card] = feishu_server.replies_to(message_in(event))
    updates_before = len(card.updates)
    feishu_server.fail_next(settings.BOTS_API_RETRIES + 1)  # every try of the card's update

    assert await resume.resume_stale() == 1

    assert await deliveries_done()
    assert len(card.updates) == updates_before
    await Delivery.objects.aupdate(updated_at=timezone.now() - timedelta(minutes=10))
    assert await resume.resume_stale() == 0


async def test_a_restarted_daphne_finishes_a_card_left_half_sent_by_itself(
    site, feishu_channel, feishu_server, make_persona
):
    event = await leave_a_feishu_card_half_sent(site, feishu_channel, feishu_server, make_persona)
    env = {"BOTS_FEISHU_BASE_URL": feishu_server.base_url, "CHAT_STALE_AFTER_S": "5"}

    # A new process serves the site; nobody writes to the bot.
    server = DaphneServer(env=env)
    await asyncio.to_thread(server.start)
    try:
        await async_wait_until(deliveries_done, timeout_s=30, message="the restarted site did not finish the card")
    finally:
        await asyncio.to_thread(server.stop)

    [card] = feishu_server.replies_to(message_in(event))
    interrupted = await Message.objects.aget(status=Message.Status.INTERRUPTED)
    assert card.markdown().startswith(interrupted.content.rstrip()) and interrupted.error_text in card.markdown()


@pytest.mark.parametrize(
    ("argv", "environ", "serves"),
    [
        (["/srv/chat/.venv/bin/daphne", "-b", "0.0.0.0", "chatsite.asgi:application"], {}, True),
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),
        (["manage.py", "runserver"], {}, False),  # the autoreloader's parent serves nothing
        (["manage.py", "migrate"], {}, False),
        (["manage.py", "makemigrations", "--check"], {}, False),
        (["manage.py", "import_job_run", "3"], {"RUN_MAIN": "true"}, False),
        (["/srv/chat/.venv/bin/pytest", "tests"], {}, False),
    ],
)
def test_the_start_up_hook_runs_once_and_only_in_a_process_that_serves_the_site(monkeypatch, argv, environ, serves):
    scheduled = []
    monkeypatch.setattr(serving, "at_start", scheduled.append)
    monkeypatch.setattr(resume, "_sweeping", False)
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(os, "environ", environ)

    apps.get_app_config("bots").ready()
    apps.get_app_config("bots").ready()  # Django may call ready() twice (tests fiddling with apps)

    assert len(scheduled) == (1 if serves else 0)
