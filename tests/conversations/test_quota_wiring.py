"""Limits and quotas at the socket: a send over a limit is refused with its reason, and nothing goes upstream."""

import pytest
from asgiref.sync import sync_to_async

from accounts.models import UsageLimit
from conversations import services
from conversations.models import Message
from tests.conftest import streamed_requests

pytestmark = pytest.mark.django_db(transaction=True)


async def start_chat(owner, make_persona, model_id="long:3"):
    persona = await sync_to_async(make_persona)(model_id)
    return await sync_to_async(services.conversation_create)(owner=owner, persona=persona)


async def test_sends_per_minute_over_the_limit_are_refused_and_the_greeting_does_not_count(
    alice, make_persona, open_socket, upstream
):
    await UsageLimit.objects.acreate(user=alice, sends_per_minute=2)
    conversation = await start_chat(alice, make_persona)
    socket = await open_socket(alice, conversation.public_id)
    for text in ("one", "two"):
        await socket.send(text)
        await socket.receive_final()
    before = await Message.objects.acount()
    await socket.send("three")
    await socket.receive_until("You have sent 2 messages in the last minute")
    assert await Message.objects.acount() == before and len(streamed_requests(upstream)) == 2


async def test_daily_tokens_used_up_refuse_the_next_send(alice, make_persona, open_socket, upstream):
    await UsageLimit.objects.acreate(user=alice, daily_tokens=10)
    conversation = await start_chat(alice, make_persona, "long:20")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("use them up")
    frames = await socket.receive_final()
    assert 'id="quota-status"' in frames[-1] and 'hx-swap-oob="true"' in frames[-1]
    await socket.send("one more")
    await socket.receive_until("today’s 10 tokens")
    assert len(streamed_requests(upstream)) == 1


async def test_concurrent_replies_over_the_limit_are_refused(alice, make_persona, open_socket):
    await UsageLimit.objects.acreate(user=alice, concurrent_replies=1)
    conversation = await start_chat(alice, make_persona, "long:200+delay:20")
    other = await start_chat(alice, make_persona, "long:200+delay:20")
    first = await open_socket(alice, conversation.public_id)
    second = await open_socket(alice, other.public_id)
    await first.send("slow")
    await first.receive_until("beforeend")
    await second.send("also slow")
    await second.receive_until("A reply is already being written")
    await first.stop()
    await first.receive_final("stopped")


@pytest.mark.django_db
def test_chat_page_shows_what_remains(client, alice, persona):
    UsageLimit.objects.create(user=alice, daily_tokens=50_000)
    conversation = services.conversation_create(owner=alice, persona=persona)
    client.force_login(alice)
    page = client.get(conversation.get_absolute_url()).content.decode()
    assert 'id="quota-status"' in page and "50,000 of 50,000 tokens left today" in page
