"""Feishu and Lark bots end to end: the real ASGI site, the fake Feishu platform and the fake model upstream."""

import asyncio
import json
import uuid

import pytest
from asgiref.sync import sync_to_async

from bots import feishu_bot, services
from bots.http import PlatformError
from bots.models import BotChat, Delivery
from conversations.models import Conversation, Message
from tests.bots.conftest import FEISHU_ENCRYPT_KEY, FEISHU_TOKEN
from tests.fakes import feishu_server as feishu_server_module
from tests.fakes.feishu_server import event_request, message_event
from tests.waiting import async_wait_until

pytestmark = pytest.mark.django_db(transaction=True)


async def post_event(site, channel, payload, *, encrypt_key=FEISHU_ENCRYPT_KEY, **kwargs):
    body, headers = event_request(payload, encrypt_key=encrypt_key, **kwargs)
    return await site.post(f"/bots/feishu/{channel.public_id}/", content=body, headers=headers)


async def finished_replies() -> list[Message]:
    return [m async for m in Message.objects.filter(role="assistant", parent__isnull=False).exclude(status="streaming")]


async def deliveries_done() -> bool:
    return not await Delivery.objects.exclude(state=Delivery.State.DONE).aexists()


def message_in(payload) -> str:
    return payload["event"]["message"]["message_id"]


async def test_url_verification_is_answered_with_the_challenge(site, feishu_channel):
    check = {"challenge": "ch-123", "token": FEISHU_TOKEN, "type": "url_verification"}
    response = await post_event(site, feishu_channel, check)
    assert response.status_code == 200
    assert response.json() == {"challenge": "ch-123"}


async def test_url_verification_with_another_token_is_refused(site, feishu_channel):
    check = {"challenge": "ch-123", "token": "forged", "type": "url_verification"}
    response = await post_event(site, feishu_channel, check)
    assert response.status_code == 403


async def test_encrypted_direct_message_is_answered_with_a_card_updated_as_it_streams(
    site, feishu_channel, feishu_server, make_persona
):
    feishu_channel.persona = await sync_to_async(make_persona)("long:40+delay:20", slug="slow")
    await feishu_channel.asave(update_fields=["persona"])
    event = message_event(text="hello bot", token=FEISHU_TOKEN)

    response = await post_event(site, feishu_channel, event)

    assert response.status_code == 200 and response.json() == {}
    await async_wait_until(deliveries_done, timeout_s=20)
    [card] = feishu_server.replies_to(message_in(event))
    assert card.msg_type == "interactive"
    reply = (await finished_replies())[0]
    assert card.markdown() == reply.content
    first = card.markdown(card.content)
    assert first and len(first) < len(reply.content) and reply.content.startswith(first.rstrip())
    assert len(card.updates) >= 2  # updated in place while the reply grew, then with the whole reply


async def test_group_messages_are_answered_only_when_the_bot_is_mentioned(site, feishu_channel, feishu_server):
    unmentioned = message_event(text="talking to people", token=FEISHU_TOKEN, chat_id="oc_group", chat_type="group")
    mentioned = message_event(
        text="what time is it?", token=FEISHU_TOKEN, chat_id="oc_group", chat_type="group", mention_bot=True
    )

    await post_event(site, feishu_channel, unmentioned)
    await post_event(site, feishu_channel, mentioned)

    await async_wait_until(deliveries_done, timeout_s=20)
    assert feishu_server.replies_to(message_in(unmentioned)) == []
    [card] = feishu_server.replies_to(message_in(mentioned))
    question = await Message.objects.aget(role="user")
    assert question.content == "what time is it?"  # the mention stripped
    assert "what time is it?" in card.markdown()
    chat = await BotChat.objects.select_related("owner").aget(chat_id="oc_group")
    assert chat.is_group and chat.owner.username.startswith("feishu-group-")


async def test_a_duplicate_delivery_is_answered_once(site, feishu_channel, feishu_server):
    event = message_event(text="only once", token=FEISHU_TOKEN)

    first = await post_event(site, feishu_channel, event)
    second = await post_event(site, feishu_channel, event, nonce="nonce-2")

    assert first.status_code == second.status_code == 200
    await async_wait_until(deliveries_done, timeout_s=20)
    assert len(feishu_server.replies_to(message_in(event))) == 1
    assert await Message.objects.filter(role="user").acount() == 1


async def test_the_conversation_continues_and_new_starts_a_fresh_one(site, feishu_channel, feishu_server):
    for text in ("first question", "second question"):
        await post_event(site, feishu_channel, message_event(text=text, token=FEISHU_TOKEN))
        await async_wait_until(deliveries_done, timeout_s=20)
    assert await Conversation.objects.acount() == 1
    command = message_event(text="/new", token=FEISHU_TOKEN)

    await post_event(site, feishu_channel, command)
    await async_wait_until(deliveries_done, timeout_s=20)
    [said] = feishu_server.replies_to(message_in(command))
    assert said.msg_type == "text" and "new conversation" in said.text
    await post_event(site, feishu_channel, message_event(text="third question", token=FEISHU_TOKEN))
    await async_wait_until(deliveries_done, timeout_s=20)

    assert await Conversation.objects.acount() == 2
    chat = await BotChat.objects.select_related("conversation").aget()
    assert [m.content async for m in chat.conversation.messages.filter(role="user")] == ["third question"]


async def test_chinese_new_command_starts_a_fresh_conversation(site, feishu_channel):
    await post_event(site, feishu_channel, message_event(text="你好", token=FEISHU_TOKEN))
    await async_wait_until(deliveries_done, timeout_s=20)
    await post_event(site, feishu_channel, message_event(text="新对话", token=FEISHU_TOKEN))
    await async_wait_until(deliveries_done, timeout_s=20)
    chat = await BotChat.objects.aget()
    assert await Conversation.objects.acount() == 2
    assert chat.conversation_id == (await Conversation.objects.order_by("-id").afirst()).pk


async def test_help_says_what_the_bot_does(site, feishu_channel, feishu_server):
    event = message_event(text="/help", token=FEISHU_TOKEN)
    await post_event(site, feishu_channel, event)
    await async_wait_until(deliveries_done, timeout_s=20)
    [said] = feishu_server.replies_to(message_in(event))
    assert "/new" in said.text and "Assistant" in said.text
    assert not await Message.objects.filter(role="user").aexists()


async def test_a_quota_refusal_is_said_in_the_chat(site, feishu_channel, feishu_server, settings):
    settings.CHAT_DEFAULT_SENDS_PER_MINUTE = 1
    await post_event(site, feishu_channel, message_event(text="one", token=FEISHU_TOKEN))
    await async_wait_until(deliveries_done, timeout_s=20)
    refused = message_event(text="two", token=FEISHU_TOKEN)

    await post_event(site, feishu_channel, refused)
    await async_wait_until(deliveries_done, timeout_s=20)

    [said] = feishu_server.replies_to(message_in(refused))
    assert "in the last minute" in said.text
    assert await Message.objects.filter(role="user").acount() == 1


async def test_an_upstream_failure_becomes_a_short_message_in_the_chat(
    site, feishu_channel, make_persona, feishu_server
):
    feishu_channel.persona = await sync_to_async(make_persona)("status:401", slug="broken")
    await feishu_channel.asave(update_fields=["persona"])
    event = message_event(text="hello", token=FEISHU_TOKEN)
    await post_event(site, feishu_channel, event)
    await async_wait_until(deliveries_done, timeout_s=20)
    [card] = feishu_server.replies_to(message_in(event))
    reply = await Message.objects.aget(role="assistant", status="error")
    assert reply.error_text and card.markdown() == reply.error_text


async def test_an_image_gets_a_polite_text_reply(site, feishu_channel, feishu_server):
    event = message_event(text="", token=FEISHU_TOKEN, message_type="image", content={"image_key": "img_1"})
    await post_event(site, feishu_channel, event)
    await async_wait_until(deliveries_done, timeout_s=20)
    [said] = feishu_server.replies_to(message_in(event))
    assert "text messages only" in said.text


async def test_an_expired_token_is_fetched_again_and_failures_are_retried(site, feishu_channel, feishu_server):
    await post_event(site, feishu_channel, message_event(text="one", token=FEISHU_TOKEN))
    await async_wait_until(deliveries_done, timeout_s=20)
    assert feishu_server.token_requests == 1
    feishu_server.revoke_tokens()
    feishu_server.fail_next(2)
    event = message_event(text="two", token=FEISHU_TOKEN)

    await post_event(site, feishu_channel, event)
    await async_wait_until(deliveries_done, timeout_s=20)

    assert feishu_server.token_requests == 2
    assert len(feishu_server.replies_to(message_in(event))) == 1


async def test_a_forged_signature_is_refused_without_side_effects(site, feishu_channel, feishu_server):
    body, headers = event_request(message_event(text="hi", token=FEISHU_TOKEN), encrypt_key=FEISHU_ENCRYPT_KEY)
    headers["X-Lark-Signature"] = "f" * 64
    response = await site.post(f"/bots/feishu/{feishu_channel.public_id}/", content=body, headers=headers)
    assert response.status_code == 403
    assert not await Delivery.objects.aexists()
    assert feishu_server.token_requests == 0


async def test_an_undecryptable_payload_is_refused(site, feishu_channel):
    body = json.dumps({"encrypt": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}).encode()
    response = await site.post(f"/bots/feishu/{feishu_channel.public_id}/", content=body)
    assert response.status_code == 403
    assert not await Delivery.objects.aexists()


async def test_malformed_and_oversized_bodies_are_400(site, feishu_channel, settings):
    url = f"/bots/feishu/{feishu_channel.public_id}/"
    assert (await site.post(url, content=b"{not json")).status_code == 400
    assert (await site.post(url, content=b"x" * (settings.BOTS_MAX_BODY_BYTES + 1))).status_code == 400


async def test_unknown_and_disabled_channels_are_404(site, feishu_channel):
    body, headers = event_request({"type": "url_verification", "challenge": "c", "token": FEISHU_TOKEN})
    assert (await site.post(f"/bots/feishu/{uuid.uuid4()}/", content=body, headers=headers)).status_code == 404
    feishu_channel.enabled = False
    await feishu_channel.asave(update_fields=["enabled"])
    response = await site.post(f"/bots/feishu/{feishu_channel.public_id}/", content=body, headers=headers)
    assert response.status_code == 404


async def test_a_lark_channel_calls_the_lark_base_url(site, feishu_channel, feishu_server, settings):
    settings.BOTS_FEISHU_BASE_URL = "http://127.0.0.1:9"  # nothing listens there: Feishu's URL must not be used
    feishu_channel.kind = "lark"
    await feishu_channel.asave(update_fields=["kind"])
    event = message_event(text="hello from Lark", token=FEISHU_TOKEN)

    await post_event(site, feishu_channel, event)
    await async_wait_until(deliveries_done, timeout_s=20)

    [card] = feishu_server.replies_to(message_in(event))
    assert "hello from Lark" in card.markdown()


async def test_a_feishu_callback_url_does_not_serve_a_wechat_channel(site, wechat_channel):
    body, headers = event_request({"type": "url_verification", "challenge": "c", "token": FEISHU_TOKEN})
    response = await site.post(f"/bots/feishu/{wechat_channel.public_id}/", content=body, headers=headers)
    assert response.status_code == 404


async def test_a_long_reply_continues_in_further_cards_within_the_limit(
    site, feishu_channel, feishu_server, make_persona, settings
):
    settings.BOTS_FEISHU_CARD_MAX_CHARS = 100
    feishu_channel.persona = await sync_to_async(make_persona)("long:80", slug="long")
    await feishu_channel.asave(update_fields=["persona"])
    event = message_event(text="a long answer please", token=FEISHU_TOKEN)

    await post_event(site, feishu_channel, event)
    await async_wait_until(deliveries_done, timeout_s=20)

    cards = feishu_server.replies_to(message_in(event))
    reply = (await finished_replies())[0]
    assert len(cards) > 1 and all(len(card.markdown()) <= 100 for card in cards)
    assert " ".join(card.markdown() for card in cards).split() == reply.content.split()


async def test_the_tenant_token_is_cached_and_fetched_again_before_it_expires(feishu_channel, feishu_server, settings):
    settings.BOTS_TOKEN_REFRESH_MARGIN_S = feishu_server.token_expire_s - 1  # cached for 1 s
    api = feishu_bot.api_for(feishu_channel)
    first = await api.token()
    assert await api.token() == first and feishu_server.token_requests == 1

    renewed = await async_wait_until(_renewed(api, first), timeout_s=5)

    assert renewed != first and feishu_server.token_requests == 2


def _renewed(api, first):
    async def check():
        token = await api.token()
        return token if token != first else None

    return check


async def test_the_callback_is_answered_before_the_reply_reaches_feishu(site, feishu_channel, feishu_server):
    # Feishu wants a callback answered within 3 s ("接收事件"): the answer must not wait for the reply.
    # The fake holds the card's creation, so a callback that waited on the reply would never be answered.
    event = message_event(text="answer me later", token=FEISHU_TOKEN)
    feishu_server.hold_replies()
    try:
        response = await asyncio.wait_for(post_event(site, feishu_channel, event), timeout=20)

        assert response.status_code == 200 and response.json() == {}
        assert feishu_server.replies_to(message_in(event)) == []  # no card yet, let alone its final update
        assert await Delivery.objects.exclude(state=Delivery.State.DONE).aexists()
    finally:
        feishu_server.release_replies()
    await async_wait_until(deliveries_done, timeout_s=20)
    [card] = feishu_server.replies_to(message_in(event))
    assert card.markdown() == (await finished_replies())[0].content


async def test_a_streamed_reply_stays_within_feishus_card_update_rate(
    site, feishu_channel, feishu_server, make_persona, settings
):
    settings.BOTS_STREAM_INTERVAL_MS = 200  # the smallest interval the settings allow
    feishu_channel.persona = await sync_to_async(make_persona)("long:80+delay:20", slug="steady")
    await feishu_channel.asave(update_fields=["persona"])
    event = message_event(text="stream for a while", token=FEISHU_TOKEN)

    await post_event(site, feishu_channel, event)
    await async_wait_until(deliveries_done, timeout_s=30)

    [card] = feishu_server.replies_to(message_in(event))
    assert feishu_server.refusals == []
    assert len(card.updates) >= 2 and card.markdown() == (await finished_replies())[0].content


async def test_the_fake_refuses_card_updates_faster_than_feishus_limit(feishu_channel, feishu_server):
    # The rate limit of the fake itself: without it the test above could not fail.
    api = feishu_bot.api_for(feishu_channel)
    card_id = await api.reply_card(message_id="om_in_rate", markdown="start")
    for number in range(feishu_server_module.UPDATES_PER_SECOND):
        await api.update_card(message_id=card_id, markdown=f"update {number}")

    with pytest.raises(PlatformError, match=str(feishu_server_module.RATE_LIMITED)):
        await api.update_card(message_id=card_id, markdown="one too many")

    assert feishu_server.refusals == [(card_id, feishu_server_module.RATE_LIMITED)]


async def test_card_updates_as_fast_as_the_text_grows_are_paced_to_feishus_limit(feishu_channel, feishu_server):
    delivery = await sync_to_async(services.delivery_claim)(
        channel=feishu_channel, event_key="ev_paced", source_message_id="om_in_paced"
    )
    sink = feishu_bot.CardSink(api=feishu_bot.api_for(feishu_channel), delivery=delivery)

    for length in range(1, 10):  # each show changes the card, with no interval in between
        await sink.show("x" * length, final=False)
    await sink.show("x" * 10, final=True)

    [card] = feishu_server.replies_to("om_in_paced")
    assert feishu_server.refusals == []
    assert len(card.updates) == 9 and card.markdown() == "x" * 10
