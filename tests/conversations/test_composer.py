"""What the composer's frames get back: taken or refused (with key and reason), one reply at a time, Continue."""

import re

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from accounts.models import UsageLimit
from conversations import services
from conversations.models import Message
from tests.conftest import streamed_requests
from tests.sockets import start_chat

pytestmark = pytest.mark.django_db(transaction=True)

OUTCOME = re.compile(r'<div id="composer-alert"[^>]* data-outcome="(\w+)" data-key="([^"]*)">(.*?)</div>', re.S)


def outcomes(frames: list[str]) -> list[tuple[str, str, str]]:
    return [match.groups() for frame in frames for match in OUTCOME.finditer(frame)]


async def test_a_taken_message_is_answered_accepted_with_its_key(alice, make_persona, open_socket):
    conversation = await start_chat(alice, make_persona, "long:3")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("hello", idempotency_key="key-1")
    frames = await socket.receive_final()
    assert outcomes(frames) == [("accepted", "key-1", "")]


async def test_a_refused_message_is_answered_with_its_key_and_reason_and_nothing_is_saved(
    alice, make_persona, open_socket, upstream
):
    await UsageLimit.objects.acreate(user=alice, daily_tokens=1)
    await sync_to_async(services.usage_add)(user_id=alice.pk, started_at=timezone.now(), tokens=5)
    conversation = await start_chat(alice, make_persona, "long:3")
    before = await Message.objects.acount()
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("over the limit", idempotency_key="key-2")
    frames = await socket.receive_until("data-outcome")
    ((outcome, key, reason),) = outcomes(frames)
    assert (outcome, key) == ("refused", "key-2") and "You have used today’s 1 token" in reason
    assert await Message.objects.acount() == before and streamed_requests(upstream) == []


async def test_a_key_is_escaped_in_the_answer(alice, make_persona, open_socket):
    conversation = await start_chat(alice, make_persona, "long:1")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("", idempotency_key='"><img src=x>')
    frames = await socket.receive_until("data-outcome")
    assert 'data-key="&quot;&gt;&lt;img src=x&gt;"' in frames[-1] and "<img" not in frames[-1]


async def test_a_second_message_while_a_reply_streams_is_refused_and_saves_nothing(
    alice, make_persona, open_socket, upstream
):
    conversation = await start_chat(alice, make_persona, "long:200+delay:20")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("first", idempotency_key="a")
    await socket.receive_until('hx-swap-oob="beforeend">w0 ')  # The first reply streams (its first delta).
    before = await Message.objects.acount()
    await socket.send("second", idempotency_key="b")
    frames = await socket.receive_until('data-key="b"')
    assert ("refused", "b", "Wait for the reply to finish, or stop it, first.") in outcomes(frames)
    assert await Message.objects.acount() == before
    await socket.stop()
    await socket.receive_final("stopped")
    assert len(streamed_requests(upstream)) == 1


async def test_a_message_sent_again_after_it_was_taken_is_answered_accepted_even_while_its_reply_streams(
    alice, make_persona, open_socket, upstream
):
    await UsageLimit.objects.acreate(user=alice, concurrent_replies=1)
    conversation = await start_chat(alice, make_persona, "long:200+delay:20")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("once", idempotency_key="same")
    await socket.receive_until("beforeend")
    await socket.send("once", idempotency_key="same")  # As the page does after a reconnect.
    frames = await socket.receive_until('data-outcome="accepted" data-key="same"')
    assert not [o for o in outcomes(frames) if o[0] == "refused"]
    assert await Message.objects.filter(role="user").acount() == 1
    await socket.stop()
    await socket.receive_final("stopped")


async def test_an_edit_sent_twice_with_one_key_is_applied_once(alice, make_persona, open_socket):
    conversation = await start_chat(alice, make_persona, "long:2")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("typo")
    await socket.receive_final()
    edit = {"action": "edit", "message": "fixed", "idempotency_key": "e-1"}
    await socket.communicator.send_json_to(edit)
    await socket.receive_final()
    await socket.communicator.send_json_to(edit)
    frames = await socket.receive_until('data-key="e-1"')
    assert outcomes(frames)[-1][:2] == ("accepted", "e-1")
    assert await Message.objects.filter(role="user").acount() == 2  # The question and its one edit.


async def test_continue_after_a_cut_off_reply_asks_the_model_to_go_on(alice, make_persona, open_socket, upstream):
    conversation = await start_chat(alice, make_persona, "long:3+finish:length")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("write a lot")
    frames = await socket.receive_final()
    assert "action-continue" in frames[-1]
    await socket.communicator.send_json_to({"action": "continue", "idempotency_key": "c-1"})
    frames = await socket.receive_final()
    assert ("accepted", "c-1", "") in outcomes(frames)
    asked = streamed_requests(upstream)[-1].body["messages"]
    assert asked[-2] == {"role": "assistant", "content": "w0 w1 w2 "}
    assert asked[-1] == {"role": "user", "content": "Continue from where you stopped."}


async def test_continue_is_refused_after_a_reply_that_was_not_cut_off(alice, make_persona, open_socket, upstream):
    conversation = await start_chat(alice, make_persona, "long:3")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("short")
    await socket.receive_final()
    await socket.communicator.send_json_to({"action": "continue"})
    frames = await socket.receive_until("data-outcome")
    assert outcomes(frames)[-1][0] == "refused"
    assert "Only a reply cut off by its length limit can be continued." in frames[-1]
    assert len(streamed_requests(upstream)) == 1
