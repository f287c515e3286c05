"""WeChat Official Account end to end: the real ASGI site, the fake WeChat API and the fake model upstream."""

import json
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from bots import services
from bots.models import BotChannel, Delivery
from conversations.models import Message
from tests.bots.conftest import WECHAT_AES_KEY, WECHAT_TOKEN
from tests.bots.test_feishu import deliveries_done
from tests.fakes.wechat_server import decrypt, event_xml, message_request, signature, text_xml
from tests.waiting import async_wait_until

pytestmark = pytest.mark.django_db(transaction=True)

DOCUMENTED = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "bots" / "wechat.json").read_text())


async def post_message(site, channel, xml, *, safe=True, **kwargs):
    query, body = message_request(
        xml,
        token=WECHAT_TOKEN,
        encoding_aes_key=WECHAT_AES_KEY if safe else "",
        app_id=channel.app_id,
        **kwargs,
    )
    return await site.post(f"/bots/wechat/{channel.public_id}/?{query}", content=body)


def passive_content(response) -> str:
    """Return the Content of a passive reply, decrypting a safe-mode one."""
    root = ElementTree.fromstring(response.content)
    encrypted = root.findtext("Encrypt")
    if encrypted is not None:
        root = ElementTree.fromstring(decrypt(encoding_aes_key=WECHAT_AES_KEY, encrypted=encrypted))
    return root.findtext("Content") or ""


async def test_documented_server_url_check_echoes_echostr(site, wechat_channel):
    example = DOCUMENTED["url_check"]
    await sync_to_async(services.channel_set_secrets)(channel=wechat_channel, token=example["token"])
    params = {k: example[k] for k in ("signature", "timestamp", "nonce", "echostr")}
    # The documented example was signed in 2024: widen the replay window to check its signature.
    with override_settings(BOTS_MAX_CLOCK_SKEW_S=10**10):
        response = await site.get(f"/bots/wechat/{wechat_channel.public_id}/", params=params)
    assert response.status_code == 200 and response.text == example["echostr"]


async def test_url_check_with_a_bad_signature_is_refused(site, wechat_channel):
    # A fresh timestamp, so the signature check is what refuses it, not the replay window.
    params = {"signature": "0" * 40, "timestamp": str(int(time.time())), "nonce": "1", "echostr": "x"}
    response = await site.get(f"/bots/wechat/{wechat_channel.public_id}/", params=params)
    assert response.status_code == 403 and "x" not in response.text


async def test_a_quick_reply_is_answered_passively_and_encrypted(site, wechat_channel, wechat_server):
    response = await post_message(site, wechat_channel, text_xml(text="hello **there**"))

    assert response.status_code == 200
    assert b"<Encrypt>" in response.content  # safe mode answers encrypted
    reply = await Message.objects.aget(role="assistant", parent__isnull=False)
    content = passive_content(response)
    assert content and "**" not in content  # Markdown turned into plain text
    assert "hello" in content and reply.status == "complete"
    assert wechat_server.sent == []


async def test_a_slow_reply_answers_success_then_comes_through_the_customer_service_api(
    site, wechat_channel, wechat_server, make_persona, settings
):
    settings.BOTS_WECHAT_PASSIVE_WAIT_MS = 50
    wechat_channel.persona = await sync_to_async(make_persona)("long:10+delay:40", slug="slow")
    await wechat_channel.asave(update_fields=["persona"])

    response = await post_message(site, wechat_channel, text_xml(text="take your time", open_id="o_slow"))

    assert response.text == "success"
    await async_wait_until(lambda: wechat_server.sent, timeout_s=20)
    [sent] = wechat_server.sent
    assert sent.touser == "o_slow" and sent.content.startswith("w0 w1")


async def test_a_retried_message_is_answered_once(site, wechat_channel, wechat_server, make_persona, settings):
    settings.BOTS_WECHAT_PASSIVE_WAIT_MS = 50
    wechat_channel.persona = await sync_to_async(make_persona)("long:10+delay:40", slug="slow")
    await wechat_channel.asave(update_fields=["persona"])
    xml = text_xml(text="once please", msg_id="77777")

    first = await post_message(site, wechat_channel, xml)
    retry = await post_message(site, wechat_channel, xml, nonce="654321")

    assert first.text == retry.text == "success"
    await async_wait_until(deliveries_done, timeout_s=20)
    assert len(wechat_server.sent) == 1
    assert await Message.objects.filter(role="user").acount() == 1


async def test_subscribing_is_greeted_with_the_persona_greeting(site, wechat_channel):
    response = await post_message(site, wechat_channel, event_xml(event="subscribe"))
    assert passive_content(response) == "Hello! How can I help?"


async def test_an_image_gets_a_polite_reply(site, wechat_channel):
    xml = (
        "<xml><ToUserName>gh_test</ToUserName><FromUserName>o_person_1</FromUserName><CreateTime>1</CreateTime>"
        "<MsgType>image</MsgType><PicUrl>http://x/y.jpg</PicUrl><MsgId>999</MsgId></xml>"
    )
    response = await post_message(site, wechat_channel, xml)
    assert "text messages only" in passive_content(response)


async def test_a_long_reply_is_split_within_the_size_limit(site, wechat_channel, wechat_server, make_persona, settings):
    settings.BOTS_WECHAT_MAX_BYTES = 100
    wechat_channel.persona = await sync_to_async(make_persona)("long:60", slug="long")
    await wechat_channel.asave(update_fields=["persona"])

    response = await post_message(site, wechat_channel, text_xml(text="long please"))

    first = passive_content(response)
    await async_wait_until(deliveries_done, timeout_s=20)
    parts = [first, *(m.content for m in wechat_server.sent)]
    assert len(parts) > 1 and all(len(part.encode()) <= 100 for part in parts)
    reply = await Message.objects.aget(role="assistant", parent__isnull=False)
    assert " ".join(parts).split() == reply.content.split()


async def test_an_invalid_token_error_fetches_a_new_token(site, wechat_channel, wechat_server, make_persona, settings):
    settings.BOTS_WECHAT_PASSIVE_WAIT_MS = 0
    await post_message(site, wechat_channel, text_xml(text="one"))
    await async_wait_until(lambda: wechat_server.sent, timeout_s=20)
    wechat_server.revoke_tokens()

    await post_message(site, wechat_channel, text_xml(text="two"))

    await async_wait_until(lambda: len(wechat_server.sent) == 2, timeout_s=20)
    assert wechat_server.token_requests == 2


async def test_a_forged_msg_signature_is_refused_without_side_effects(site, wechat_channel):
    query, body = message_request(
        text_xml(text="hi"), token=WECHAT_TOKEN, encoding_aes_key=WECHAT_AES_KEY, app_id=wechat_channel.app_id
    )
    query = query.replace("msg_signature=", "msg_signature=0")
    response = await site.post(f"/bots/wechat/{wechat_channel.public_id}/?{query}", content=body)
    assert response.status_code == 403
    assert not await Delivery.objects.aexists()


async def test_a_replayed_old_timestamp_is_refused(site, wechat_channel):
    response = await post_message(site, wechat_channel, text_xml(text="hi"), timestamp=1714037059)
    assert response.status_code == 403
    assert not await Delivery.objects.aexists()


async def test_safe_mode_refuses_a_plain_message(site, wechat_channel):
    response = await post_message(site, wechat_channel, text_xml(text="hi"), safe=False)
    assert response.status_code == 403


async def test_plain_mode_answers_in_plain_xml(site, wechat_channel):
    wechat_channel.message_mode = BotChannel.MessageMode.PLAIN
    await wechat_channel.asave(update_fields=["message_mode"])
    response = await post_message(site, wechat_channel, text_xml(text="plain hello"), safe=False)
    assert b"<Encrypt>" not in response.content and "plain hello" in passive_content(response)


async def test_malformed_and_entity_bodies_are_400(site, wechat_channel):
    wechat_channel.message_mode = BotChannel.MessageMode.PLAIN
    await wechat_channel.asave(update_fields=["message_mode"])
    stamp, nonce = str(int(time.time())), "1"
    query = f"signature={signature(WECHAT_TOKEN, stamp, nonce)}&timestamp={stamp}&nonce={nonce}"
    url = f"/bots/wechat/{wechat_channel.public_id}/?{query}"
    assert (await site.post(url, content=b"<xml><unclosed></xml>")).status_code == 400
    bomb = b'<!DOCTYPE x [<!ENTITY a "b">]><xml><Content>&a;</Content></xml>'
    assert (await site.post(url, content=bomb)).status_code == 400
    assert not await Delivery.objects.aexists()


async def test_documented_compatible_mode_message_is_answered_encrypted(site, wechat_channel):
    example = DOCUMENTED["compatible_push"]
    wechat_channel.app_id = example["app_id"]
    wechat_channel.message_mode = BotChannel.MessageMode.COMPATIBLE
    await wechat_channel.asave(update_fields=["app_id", "message_mode"])
    await sync_to_async(services.channel_set_secrets)(
        channel=wechat_channel, token=example["token"], aes_key=example["encoding_aes_key"]
    )
    stamp, nonce = example["timestamp"], example["nonce"]
    params = {
        "signature": signature(example["token"], stamp, nonce),
        "timestamp": stamp,
        "nonce": nonce,
        "encrypt_type": "aes",
        "msg_signature": example["msg_signature"],
    }
    # The documented example was signed in 2014: widen the replay window to check its signatures.
    with override_settings(BOTS_MAX_CLOCK_SKEW_S=10**10):
        response = await site.post(
            f"/bots/wechat/{wechat_channel.public_id}/", params=params, content=example["body"].encode()
        )

    assert response.status_code == 200 and b"<Encrypt>" in response.content
    assert "abcdteT" in passive_content(response)
    question = await Message.objects.aget(role="user")
    assert question.content == "abcdteT"


async def test_compatible_mode_reads_the_encrypted_copy_not_the_plain_one(site, wechat_channel):
    wechat_channel.message_mode = BotChannel.MessageMode.COMPATIBLE
    await wechat_channel.asave(update_fields=["message_mode"])
    query, encrypted_body = message_request(
        text_xml(text="the signed copy"),
        token=WECHAT_TOKEN,
        encoding_aes_key=WECHAT_AES_KEY,
        app_id=wechat_channel.app_id,
    )
    encrypt = ElementTree.fromstring(encrypted_body).findtext("Encrypt")
    body = text_xml(text="a forged plain copy").replace("</xml>", f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")

    response = await site.post(f"/bots/wechat/{wechat_channel.public_id}/?{query}", content=body.encode())

    assert response.status_code == 200 and b"<Encrypt>" in response.content
    question = await Message.objects.aget(role="user")
    assert question.content == "the signed copy"


async def test_compatible_mode_also_takes_a_plain_message(site, wechat_channel):
    wechat_channel.message_mode = BotChannel.MessageMode.COMPATIBLE
    await wechat_channel.asave(update_fields=["message_mode"])
    response = await post_message(site, wechat_channel, text_xml(text="plain while switching"), safe=False)
    assert response.status_code == 200 and b"<Encrypt>" not in response.content
    assert "plain while switching" in passive_content(response)
