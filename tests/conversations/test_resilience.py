"""Generation that survives: checkpoints, heartbeats, interrupted replies, resync on reconnect, signed-out sockets."""

import asyncio
import json
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from django.contrib.sessions.backends.db import SessionStore
from django.utils import timezone

from conversations import generation, services
from conversations.models import Message
from tests.sockets import start_chat, wait_for_reply
from tests.waiting import async_wait_until

pytestmark = pytest.mark.django_db(transaction=True)


async def streaming_reply() -> Message:
    return await Message.objects.filter(role="assistant", status="streaming").alast()


async def test_a_slow_reply_is_checkpointed_while_it_streams(alice, make_persona, open_socket, settings, write_counter):
    settings.CHAT_CHECKPOINT_S = 0.3
    conversation = await start_chat(alice, make_persona, "long:40+delay:40")  # about 1.6 s
    socket = await open_socket(alice, conversation.public_id)
    write_counter.clear()
    await socket.send("slowly")
    await socket.receive_until("w15 ")

    async def checkpointed() -> bool:
        partial = await streaming_reply()
        assert partial is not None, "the reply ended before a checkpoint of its text was seen"
        return partial.heartbeat_at is not None and partial.content.startswith("w0 w1 ")

    assert await async_wait_until(checkpointed, message="no checkpoint of the text while the reply streams")
    await socket.receive_final()
    reply = await wait_for_reply()
    assert reply.content == "".join(f"w{i} " for i in range(40))
    checkpoints = [sql for sql, params in write_counter if sql.startswith("UPDATE") and "heartbeat_at" in sql]
    # One per interval, not one per delta: 40 deltas over ~1.6 s at 0.3 s.
    assert 2 <= len(checkpoints) <= 8, len(checkpoints)


async def test_replies_checking_in_during_a_checkpoint_write_are_written_together_next(alice, persona, monkeypatch):
    """A class's replies check in at once, every CHAT_CHECKPOINT_S: one statement for those that queued meanwhile."""
    written: list[list[str]] = []
    first_write, release = threading.Event(), threading.Event()
    save = services.replies_checkpoint

    def recorded(*, checkpoints):
        written.append([text for _reply, text in checkpoints])
        if len(written) == 1:
            first_write.set()
            assert release.wait(5)
        save(checkpoints=checkpoints)

    monkeypatch.setattr(services, "replies_checkpoint", recorded)
    replies = [
        (await sync_to_async(services.message_send)(conversation=conversation, text="q")).assistant_message
        for conversation in [await sync_to_async(services.conversation_create)(owner=alice, persona=persona)] * 1
        + [await sync_to_async(services.conversation_create)(owner=alice, persona=persona) for _ in range(2)]
    ]
    unstored = await sync_to_async(services.reply_unstored_start)(user=alice)
    beat = unstored.heartbeat_at
    jobs = [SimpleNamespace(message=reply, unstored=None) for reply in replies]
    hop = generation._checkpoint_hop
    checking = [asyncio.create_task(hop((jobs[0], "first")))]
    await async_wait_until(first_write.is_set, timeout_s=5, message="the first checkpoint was not written")
    checking += [asyncio.create_task(hop((job, f"text {i}"))) for i, job in enumerate(jobs[1:], start=1)]
    checking.append(asyncio.create_task(hop((SimpleNamespace(message=None, unstored=unstored), ""))))
    queue = hop._queues[asyncio.get_running_loop()]
    await async_wait_until(lambda: len(queue.waiting) == 3, timeout_s=5, message="the checkpoints did not queue")
    release.set()
    await asyncio.gather(*checking)
    assert written == [["first"], ["text 1", "text 2"]]
    saved = {m.pk: m.content async for m in Message.objects.filter(pk__in=[r.pk for r in replies])}
    assert [saved[r.pk] for r in replies] == ["first", "text 1", "text 2"]
    await unstored.arefresh_from_db()
    assert unstored.heartbeat_at > beat


async def test_a_stalled_model_still_beats(alice, make_persona, open_socket, settings):
    settings.CHAT_CHECKPOINT_S = 0.2
    settings.CHAT_HEARTBEAT_S = 0.4
    conversation = await start_chat(alice, make_persona, "long:3+stall:1.5")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("wait")
    await socket.receive_until("beforeend")
    first = (await streaming_reply()).heartbeat_at

    async def beat_again() -> bool:
        reply = await streaming_reply()  # None once the reply ended: the stall is over, and so is the test
        assert reply is not None, "the reply ended before a heartbeat during the stall"
        return reply.heartbeat_at > first

    await async_wait_until(beat_again, timeout_s=5, message="no heartbeat while the model stalls")
    await socket.receive_final()


def leave_a_dead_reply(conversation, *, age_s: int, content="half a rep") -> Message:
    sent = services.message_send(conversation=conversation, text="question")
    reply = sent.assistant_message
    Message.objects.filter(pk=reply.pk).update(content=content, heartbeat_at=timezone.now() - timedelta(seconds=age_s))
    return reply


@pytest.mark.django_db
def test_page_shows_a_reply_with_an_old_heartbeat_as_interrupted(client, alice, persona, settings):
    settings.CHAT_STALE_AFTER_S = 30
    conversation = services.conversation_create(owner=alice, persona=persona)
    reply = leave_a_dead_reply(conversation, age_s=31)
    fresh = services.conversation_create(owner=alice, persona=persona)
    alive = leave_a_dead_reply(fresh, age_s=5)
    client.force_login(alice)
    page = client.get(conversation.get_absolute_url()).content.decode()
    assert 'data-status="interrupted"' in page and "This reply was interrupted" in page
    assert "<p>half a rep</p>" in page
    reply.refresh_from_db()
    assert reply.status == "interrupted"
    client.get(fresh.get_absolute_url())
    alive.refresh_from_db()
    assert alive.status == "streaming"  # a recent heartbeat: still being written


async def test_conversation_with_a_dead_reply_stays_usable(alice, make_persona, open_socket, settings):
    settings.CHAT_STALE_AFTER_S = 30
    conversation = await start_chat(alice, make_persona, "long:2")
    await sync_to_async(leave_a_dead_reply)(conversation, age_s=60)
    socket = await open_socket(alice, conversation.public_id)
    await socket.communicator.send_json_to({"action": "regenerate"})
    await socket.receive_final()
    await socket.send("and another")
    await socket.receive_final()
    statuses = [m.status async for m in Message.objects.filter(role="assistant").order_by("created_at")]
    assert statuses == ["complete", "interrupted", "complete", "complete"]


async def test_sync_after_a_reconnect_sends_every_bubble_again(alice, make_persona, open_socket):
    conversation = await start_chat(alice, make_persona, "long:2")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("first")
    await socket.receive_final()
    await socket.communicator.send_json_to({"action": "sync", "streaming": [], "full": True})
    html = await socket.receive()
    assert (
        html.startswith('\n<div id="messages" hx-swap-oob="innerHTML">')
        or 'id="messages" hx-swap-oob="innerHTML"' in html
    )
    assert "first" in html and "<p>w0 w1</p>" in html


async def test_sync_sends_the_final_bubble_of_a_reply_that_ended_before_the_socket_opened(
    alice, make_persona, open_socket
):
    conversation = await start_chat(alice, make_persona, "long:2")
    sent = await sync_to_async(services.message_send)(conversation=conversation, text="q")
    await sync_to_async(services.reply_finish)(message=sent.assistant_message, content="done", status="complete")
    socket = await open_socket(alice, conversation.public_id)
    await socket.communicator.send_json_to(
        {"action": "sync", "streaming": [str(sent.assistant_message.public_id), "not-a-uuid"], "full": False}
    )
    html = await socket.receive()
    assert f'id="message-{sent.assistant_message.public_id}"' in html and 'hx-swap-oob="true"' in html
    assert "<p>done</p>" in html


async def test_sync_for_a_streaming_reply_asks_its_generator_for_the_text_so_far(alice, make_persona, open_socket):
    conversation = await start_chat(alice, make_persona, "long:60+delay:15")
    sender = await open_socket(alice, conversation.public_id)
    await sender.send("go")
    await sender.receive_until("w3 ")
    reply = await streaming_reply()
    await sender.communicator.send_json_to({"action": "sync", "streaming": [str(reply.public_id)], "full": False})
    frames = await sender.receive_until('hx-swap-oob="innerHTML">w0 w1 w2 w3 ')
    assert frames
    await sender.receive_final()


async def test_a_send_checks_the_sign_in_without_decoding_the_session_checked_when_the_socket_opened(
    alice, make_persona, open_socket, monkeypatch
):
    conversation = await start_chat(alice, make_persona, "long:2")
    socket = await open_socket(alice, conversation.public_id)
    # Answered once the socket has opened: frames are handled in turn, after the connection's own handler.
    await socket.communicator.send_json_to({"action": "sync", "streaming": [], "full": True})
    assert 'id="messages"' in await socket.receive()
    decoded = []
    decode = SessionStore.decode
    monkeypatch.setattr(SessionStore, "decode", lambda self, data: decoded.append(data) or decode(self, data))
    await socket.send("hello")
    await socket.receive_final()
    assert decoded == []  # conversations.signin.SignInCheck: only that nothing changed since


@pytest.mark.parametrize("how", ["logout", "deactivate", "password-change"])
async def test_a_user_signed_out_while_the_socket_is_open_can_send_nothing(alice, make_persona, open_socket, how):
    conversation = await start_chat(alice, make_persona, "long:2")
    socket = await open_socket(alice, conversation.public_id)
    before = await Message.objects.acount()
    if how == "logout":
        from django.contrib.sessions.models import Session

        await Session.objects.all().adelete()
    elif how == "deactivate":
        alice.is_active = False
        await alice.asave()
    else:
        alice.set_password("a-new-password-42")
        await alice.asave()
    await socket.communicator.send_to(text_data=json.dumps({"action": "send", "message": "still there?"}))
    closed = await socket.communicator.receive_output(2)
    assert closed["type"] == "websocket.close" and closed["code"] == 4401
    assert await Message.objects.acount() == before
