"""In an IM group chat each member is charged for what they ask: their own quota, usage and link, never the group's."""

import io
import json
import zipfile

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.urls import reverse

from bots import services
from bots.models import BotChat, BotIdentity
from conversations.models import DailyUsage, Message
from conversations.selectors import user_usage
from tests.bots.conftest import FEISHU_TOKEN
from tests.bots.test_feishu import deliveries_done, message_in, post_event
from tests.fakes.feishu_server import message_event
from tests.waiting import async_wait_until

pytestmark = pytest.mark.django_db(transaction=True)

GROUP = "oc_group_quota"


async def ask_in_group(site, channel, text, *, member):
    """@-mention the bot in GROUP as `member` (an open_id) and wait until it is answered; return the event."""
    event = message_event(
        text=text, token=FEISHU_TOKEN, chat_id=GROUP, chat_type="group", open_id=member, mention_bot=True
    )
    await post_event(site, channel, event)
    await async_wait_until(deliveries_done, timeout_s=20)
    return event


async def user_of(member):
    return (await BotIdentity.objects.select_related("user").aget(platform_user_id=member)).user


async def test_a_member_over_their_limit_is_refused_in_the_group_while_another_is_answered(
    site, feishu_channel, feishu_server, settings
):
    settings.CHAT_DEFAULT_SENDS_PER_MINUTE = 1
    await ask_in_group(site, feishu_channel, "one from ann", member="ou_ann")

    refused = await ask_in_group(site, feishu_channel, "two from ann", member="ou_ann")
    answered = await ask_in_group(site, feishu_channel, "one from ben", member="ou_ben")

    [said] = feishu_server.replies_to(message_in(refused))
    assert said.msg_type == "text" and "You have sent 1 message in the last minute" in said.text
    [card] = feishu_server.replies_to(message_in(answered))
    assert card.msg_type == "interactive" and "one from ben" in card.markdown()
    chat = await BotChat.objects.select_related("conversation").aget(chat_id=GROUP)
    questions = [m.content async for m in chat.conversation.messages.filter(role="user").order_by("created_at")]
    assert questions == ["one from ann", "one from ben"]  # one shared history


async def test_each_members_questions_and_replies_are_theirs_and_the_group_account_is_charged_nothing(
    site, feishu_channel
):
    await ask_in_group(site, feishu_channel, "from ann", member="ou_ann")
    await ask_in_group(site, feishu_channel, "from ben", member="ou_ben")
    ann, ben = await user_of("ou_ann"), await user_of("ou_ben")
    group = (await BotChat.objects.select_related("owner").aget(chat_id=GROUP)).owner

    askers = {m.content or m.role: m.asked_by_id async for m in Message.objects.filter(parent__isnull=False)}
    replies = [m async for m in Message.objects.filter(role="assistant", parent__isnull=False).order_by("id")]

    assert askers["from ann"] == replies[0].asked_by_id == ann.pk
    assert askers["from ben"] == replies[1].asked_by_id == ben.pk
    usage = {u.pk: await sync_to_async(user_usage)(user=u) for u in (ann, ben, group)}
    assert (usage[ann.pk].sends_last_minute, usage[ben.pk].sends_last_minute) == (1, 1)
    assert usage[group.pk].sends_last_minute == 0 and usage[group.pk].tokens_today == 0
    tokens = {row.user_id: row.tokens async for row in DailyUsage.objects.all()}
    assert set(tokens) == {ann.pk, ben.pk}
    assert tokens[ann.pk] == (replies[0].prompt_tokens or 0) + (replies[0].completion_tokens or 0) > 0


async def test_a_members_daily_tokens_used_in_direct_chats_refuse_them_in_the_group(
    site, feishu_channel, feishu_server, settings
):
    settings.CHAT_DEFAULT_DAILY_TOKENS = 1
    direct = message_event(text="hello in private", token=FEISHU_TOKEN, open_id="ou_ann", chat_id="oc_ann")
    await post_event(site, feishu_channel, direct)
    await async_wait_until(deliveries_done, timeout_s=20)

    refused = await ask_in_group(site, feishu_channel, "and in the group", member="ou_ann")
    answered = await ask_in_group(site, feishu_channel, "ben's turn", member="ou_ben")

    [said] = feishu_server.replies_to(message_in(refused))
    assert "You have used today’s 1 token" in said.text
    assert [card.msg_type for card in feishu_server.replies_to(message_in(answered))] == ["interactive"]


async def test_linking_moves_what_a_member_asked_in_groups_to_the_site_account(site, feishu_channel, alice):
    await ask_in_group(site, feishu_channel, "asked before linking", member="ou_ann")
    shadow = await user_of("ou_ann")
    code = await sync_to_async(services.link_code_create)(user=alice)
    link = message_event(text=f"/link {code}", token=FEISHU_TOKEN, open_id="ou_ann", chat_id="oc_ann")
    await post_event(site, feishu_channel, link)
    await async_wait_until(deliveries_done, timeout_s=20)

    assert not await get_user_model().objects.filter(pk=shadow.pk).aexists()
    question = await Message.objects.aget(content="asked before linking")
    assert question.asked_by_id == alice.pk
    assert (await sync_to_async(user_usage)(user=alice)).sends_last_minute == 1
    assert [row.user_id async for row in DailyUsage.objects.all()] == [alice.pk]


async def test_a_linked_members_export_holds_what_they_asked_in_the_group_and_not_the_others(
    site, feishu_channel, alice, client
):
    code = await sync_to_async(services.link_code_create)(user=alice)
    link = message_event(text=f"/link {code}", token=FEISHU_TOKEN, open_id="ou_ann", chat_id="oc_ann")
    await post_event(site, feishu_channel, link)
    await async_wait_until(deliveries_done, timeout_s=20)
    await ask_in_group(site, feishu_channel, "ben opens the group", member="ou_ben")
    await ask_in_group(site, feishu_channel, "ann asks the bot", member="ou_ann")

    def exported():
        client.force_login(alice)
        archive = zipfile.ZipFile(io.BytesIO(b"".join(client.get(reverse("transfer:export-all")).streaming_content)))
        return json.loads(archive.read("conversations.json"))["conversations"]

    [group] = await sync_to_async(exported)()
    assert group["group_chat"] is True and group["title"] == ""
    assert [m["role"] for m in group["messages"]] == ["user", "assistant"]
    assert group["messages"][0]["content"] == "ann asks the bot"
    assert "ben opens the group" not in json.dumps(group, ensure_ascii=False)
