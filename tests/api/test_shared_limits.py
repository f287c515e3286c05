"""One set of limits for both faces: replies and sends on the page count for /v1, and the reverse.

The page's side runs in this process (its websocket consumer, or the service it
calls); /v1 is the site in daphne. Both count from the one database.
"""

import openai
import pytest
from django.core.exceptions import ValidationError

from accounts.models import UsageLimit
from conversations import services
from conversations.models import Conversation, Message
from tests.sockets import start_chat
from tests.waiting import async_wait_until

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = "long:300+delay:20"  # 6 s of reply unless stopped


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def test_a_reply_streaming_on_the_page_makes_an_api_call_wait(async_sdk, alice, make_persona, open_socket):
    await UsageLimit.objects.acreate(user=alice, concurrent_replies=1)
    conversation = await start_chat(alice, make_persona, SLOW, slug="slow")
    page = await open_socket(alice, conversation.public_id)
    await page.send("write slowly")
    await page.receive_until("beforeend")  # the page's reply is streaming

    with pytest.raises(openai.RateLimitError) as refused:
        await async_sdk.chat.completions.create(model="slow", messages=ask("me too"), stream=True)
    assert refused.value.body["code"] == "concurrent_replies"
    assert refused.value.response.headers["Retry-After"] == "1"
    assert refused.value.body["message"] == "A reply is already being written; wait for it to finish or stop it."
    assert await Conversation.objects.acount() == 1

    await page.stop()
    await page.receive_final("stopped")


async def test_messages_sent_on_the_page_count_toward_the_apis_minute(async_sdk, alice, make_persona, open_socket):
    await UsageLimit.objects.acreate(user=alice, sends_per_minute=1)
    conversation = await start_chat(alice, make_persona, "long:2", slug="helper")
    page = await open_socket(alice, conversation.public_id)
    await page.send("one")
    await page.receive_final()

    with pytest.raises(openai.RateLimitError) as refused:
        await async_sdk.chat.completions.create(model="helper", messages=ask("two"))
    assert refused.value.body["code"] == "sends_per_minute"
    assert 1 <= int(refused.value.response.headers["Retry-After"]) <= 60
    assert "You have sent 1 message in the last minute" in refused.value.body["message"]
    assert await Message.objects.filter(role="user").acount() == 1


async def test_a_reply_streaming_through_the_api_refuses_a_send_on_the_page(
    async_sdk, alice, make_persona, open_socket
):
    await UsageLimit.objects.acreate(user=alice, concurrent_replies=1)
    conversation = await start_chat(alice, make_persona, SLOW, slug="slow")
    page = await open_socket(alice, conversation.public_id)
    stream = await async_sdk.chat.completions.create(model="slow", messages=ask("write slowly"), stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break  # the API's reply is streaming

    await page.send("me too")
    await page.receive_until("A reply is already being written; wait for it to finish or stop it.")
    assert not await Message.objects.filter(conversation=conversation, role="user").aexists()
    await stream.close()
    # The API's reply is stopped in daphne; its last write lands before this test's rows are flushed.
    await async_wait_until(lambda: Message.objects.filter(role="assistant", status="stopped").aexists())


def test_messages_sent_through_the_api_count_toward_the_pages_minute(sdk, alice, make_persona):
    UsageLimit.objects.create(user=alice, sends_per_minute=1)
    persona = make_persona("long:2", slug="helper")
    sdk.chat.completions.create(model="helper", messages=ask("one"), store=False)
    conversation = services.conversation_create(owner=alice, persona=persona)

    with pytest.raises(ValidationError) as refused:
        services.reply_request(user=alice, public_id=conversation.public_id, action="send", text="two")
    assert refused.value.code == "sends_per_minute"
    assert "You have sent 1 message in the last minute" in " ".join(refused.value.messages)
    assert not Message.objects.filter(conversation=conversation, role="user").exists()
