"""Every kind of upstream failure becomes an error bubble a person can act on; partial text is kept."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from conversations import consumers, generation, services
from conversations.models import Message
from personas.models import Provider
from tests.conftest import streamed_requests
from tests.sockets import wait_for_reply

pytestmark = pytest.mark.django_db(transaction=True)


async def chat(alice, make_persona, model_id):
    persona = await sync_to_async(make_persona)(model_id)
    return await sync_to_async(services.conversation_create)(owner=alice, persona=persona)


@pytest.mark.parametrize(
    ("model_id", "status", "message", "partial"),
    [
        ("status:401", "error", "refused the API key (401)", ""),
        ("status:404", "error", "does not know the model “status:404”", ""),
        ("status:429", "error", "rate limiting requests. Try again in 20 s", ""),
        ("quota", "error", "out of quota", ""),
        ("status:400", "error", "too long for the model", ""),
        ("status:500", "error", "unavailable right now (500)", ""),
        ("status:503", "error", "unavailable right now (503)", ""),
        ("long:10+cut:4", "error", "connection to the provider dropped", "w0 w1 w2 w3 "),
        ("long:10+error:3", "error", "reported an error in the middle of the reply", "w0 w1 w2 "),
        ("long:10+nofinish:5", "error", "The reply is incomplete", "w0 w1 w2 w3 w4 "),
    ],
    ids=["401", "404", "429", "quota", "context", "500", "503", "dropped", "midstream-error", "no-finish"],
)
async def test_upstream_failure_becomes_an_error_bubble(
    alice, make_persona, open_socket, model_id, status, message, partial
):
    conversation = await chat(alice, make_persona, model_id)
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("hello")
    frames = await socket.receive_final(status)
    assert message in frames[-1]
    reply = await wait_for_reply()
    assert reply.status == status
    assert message in reply.error_text
    assert reply.content == partial


async def test_text_that_came_before_a_dropped_connection_is_kept_while_a_delta_is_still_being_sent(
    alice, make_persona, open_socket, monkeypatch
):
    # A channel layer with a round trip (Redis): the deltas go out while the upstream's text keeps coming. aiohttp
    # drops what a response had not read yet once its connection is lost, so the stream must be read meanwhile.
    send_delta = generation.ReplyGenerator._send_delta

    async def slow_send_delta(self, seq: int, text: str) -> None:
        await asyncio.sleep(0.2)
        await send_delta(self, seq, text)

    monkeypatch.setattr(generation.ReplyGenerator, "_send_delta", slow_send_delta)
    conversation = await chat(alice, make_persona, "long:10+cut:4+delay:30")  # each piece in a read of its own
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("hello")
    frames = await socket.receive_final("error")
    assert "connection to the provider dropped" in frames[-1]
    assert (await wait_for_reply()).content == "w0 w1 w2 w3 "


async def test_text_that_came_before_a_dropped_connection_is_kept_while_the_reply_is_starting(
    alice, make_persona, open_socket, monkeypatch
):
    # A lone send's request is opened in its hop (`generation.EarlyStream`), and its reply starts once the bubbles
    # went out, a round trip each through Redis: the stream must be read meanwhile, for the same reason as above.
    send_html = consumers.ConversationConsumer._send_html

    async def slow_send_html(self, html: str) -> None:
        await asyncio.sleep(0.3)  # The upstream has cut the connection by then.
        await send_html(self, html)

    monkeypatch.setattr(consumers.ConversationConsumer, "_send_html", slow_send_html)
    conversation = await chat(alice, make_persona, "long:10+cut:4+delay:30")  # each piece in a read of its own
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("hello")
    frames = await socket.receive_final("error")
    assert "connection to the provider dropped" in frames[-1]
    assert (await wait_for_reply()).content == "w0 w1 w2 w3 "


async def test_idle_timeout_between_chunks_is_an_error_with_its_own_message(alice, make_persona, open_socket):
    await Provider.objects.aupdate(read_timeout_s=0.3)
    conversation = await chat(alice, make_persona, "long:5+stall:3")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("hello")
    frames = await socket.receive_final("error")
    assert "The provider stopped sending for 0.3 s" in frames[-1]
    assert (await wait_for_reply()).content == "w0 "


async def test_total_timeout_is_an_error_with_its_own_message(alice, make_persona, open_socket):
    await Provider.objects.aupdate(total_timeout_s=0.5)
    conversation = await chat(alice, make_persona, "long:100+delay:20")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("hello")
    frames = await socket.receive_final("error")
    assert "The reply took longer than 0.5 s in all" in frames[-1]
    reply = await wait_for_reply()
    assert reply.content.startswith("w0 w1 ") and len(reply.content.split()) < 100


async def test_slow_first_byte_is_an_idle_timeout(alice, make_persona, open_socket):
    await Provider.objects.aupdate(read_timeout_s=0.3)
    conversation = await chat(alice, make_persona, "long:3+ttfb:2000")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("hello")
    frames = await socket.receive_final("error")
    assert "stopped sending for 0.3 s" in frames[-1]


async def test_unreachable_provider_says_so(alice, make_persona, open_socket):
    await Provider.objects.aupdate(base_url="http://127.0.0.1:9/v1", connect_timeout_s=1)
    conversation = await chat(alice, make_persona, "fake-echo")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("hello")
    frames = await socket.receive_final("error")
    assert "Could not connect to the provider" in frames[-1]


@pytest.mark.parametrize(
    ("finish", "note"),
    [("length", "reached its length limit"), ("content_filter", "content filter stopped this reply")],
)
async def test_finish_reasons_length_and_content_filter_are_shown(alice, make_persona, open_socket, finish, note):
    conversation = await chat(alice, make_persona, f"long:3+finish:{finish}")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("hello")
    frames = await socket.receive_final("complete")
    assert note in frames[-1]
    reply = await wait_for_reply()
    assert reply.finish_reason == finish and reply.content == "w0 w1 w2 "


async def test_the_next_send_works_after_an_error(alice, make_persona, open_socket):
    conversation = await chat(alice, make_persona, "status:503")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("first")
    await socket.receive_final("error")
    await sync_to_async(type(conversation.persona.model).objects.update)(model_id="long:2")
    await socket.send("second")
    await socket.receive_final("complete")
    statuses = [m.status async for m in Message.objects.filter(role="assistant").order_by("created_at")]
    assert statuses == ["complete", "error", "complete"]  # greeting, failed reply, good reply


async def test_error_bubbles_never_become_model_input(alice, make_persona, open_socket, upstream):
    conversation = await chat(alice, make_persona, "long:3+cut:2")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("first")
    await socket.receive_final("error")
    await sync_to_async(type(conversation.persona.model).objects.update)(model_id="long:1")
    await socket.send("second")
    await socket.receive_final("complete")
    sent = [m["content"] for m in streamed_requests(upstream)[-1].body["messages"]]
    assert "w0 w1 " not in sent and sent[-2:] == ["first", "second"]


@pytest.mark.parametrize("fault", ["status:503", "status:500", "status:429+retry-after:0.2"])
async def test_429_and_5xx_before_the_first_token_are_retried(
    alice, make_persona, open_socket, upstream, settings, fault
):
    settings.CHAT_UPSTREAM_RETRIES = 2
    conversation = await chat(alice, make_persona, f"long:3+{fault}+fail:2")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("hello")
    await socket.receive_final("complete")
    assert (await wait_for_reply()).content == "w0 w1 w2 "
    assert len(streamed_requests(upstream)) == 3


async def test_retries_are_bounded(alice, make_persona, open_socket, upstream, settings):
    settings.CHAT_UPSTREAM_RETRIES = 1
    conversation = await chat(alice, make_persona, "long:3+status:503+fail:5")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("hello")
    await socket.receive_final("error")
    assert len(streamed_requests(upstream)) == 2


@pytest.mark.parametrize("fault", ["quota+fail:1", "status:401+fail:1", "status:429+retry-after:60+fail:1"])
async def test_quota_auth_and_long_retry_after_are_not_retried(
    alice, make_persona, open_socket, upstream, settings, fault
):
    settings.CHAT_UPSTREAM_RETRIES = 2
    conversation = await chat(alice, make_persona, f"long:3+{fault}")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("hello")
    await socket.receive_final("error")
    assert len(streamed_requests(upstream)) == 1


async def test_nothing_is_retried_after_text_was_shown(alice, make_persona, open_socket, upstream, settings):
    settings.CHAT_UPSTREAM_RETRIES = 2
    conversation = await chat(alice, make_persona, "long:10+error:3")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("hello")
    await socket.receive_final("error")
    assert len(streamed_requests(upstream)) == 1
    assert (await wait_for_reply()).content == "w0 w1 w2 "


async def test_connect_timeout_has_its_own_message(alice, make_persona, open_socket):
    import socket

    # A listener whose backlog is full: the kernel drops further SYNs, so connecting times out.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    waiting = []
    for _ in range(8):
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port))
        waiting.append(client)
    try:
        await Provider.objects.aupdate(base_url=f"http://127.0.0.1:{port}/v1", connect_timeout_s=0.5)
        conversation = await chat(alice, make_persona, "fake-echo")
        socket_ = await open_socket(alice, conversation.public_id)
        await socket_.send("hello")
        frames = await socket_.receive_final("error", timeout=15)
        assert "Could not connect to the provider within 0.5 s" in frames[-1]
    finally:
        for client in waiting:
            client.close()
        listener.close()
