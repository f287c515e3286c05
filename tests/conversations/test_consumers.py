"""The conversation websocket through the real ASGI application, against the fake upstream."""

import asyncio
import json
import re
import threading
import time
import uuid
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import OperationalError
from django.utils import translation

import llm
from accounts.models import Preference
from conversations import coalescing, consumers, generation, services, titles
from conversations.models import Conversation, Message
from conversations.signin import SignInCheck
from tests.conftest import streamed_requests
from tests.sockets import replies_settled, start_chat, wait_for_reply
from tests.waiting import async_wait_until, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

DELTA = re.compile(r'<div id="message-([0-9a-f-]+)-body" hx-swap-oob="beforeend">(.*?)</div>', re.S)


def delta_texts(frames: list[str]) -> list[str]:
    return [match.group(2) for frame in frames for match in DELTA.finditer(frame)]


async def message_count() -> int:
    return await Message.objects.acount()


# Who may connect


async def test_anonymous_socket_is_closed_with_4401(alice, make_persona, open_socket):
    conversation = await start_chat(alice, make_persona)
    socket = await open_socket(None, conversation.public_id)
    closed = await socket.communicator.receive_output(2)
    assert closed["type"] == "websocket.close" and closed["code"] == 4401


async def test_other_users_conversation_is_closed_with_4403(alice, bob, make_persona, open_socket):
    conversation = await start_chat(alice, make_persona)
    socket = await open_socket(bob, conversation.public_id)
    closed = await socket.communicator.receive_output(2)
    assert closed["type"] == "websocket.close" and closed["code"] == 4403


async def test_unknown_conversation_is_closed_with_4403(alice, open_socket):
    socket = await open_socket(alice, uuid.uuid4())
    closed = await socket.communicator.receive_output(2)
    assert closed["type"] == "websocket.close" and closed["code"] == 4403


async def test_foreign_origin_is_rejected(alice, make_persona):
    from channels.testing import WebsocketCommunicator

    from chatsite.asgi import application

    conversation = await start_chat(alice, make_persona)
    communicator = WebsocketCommunicator(
        application, f"/ws/conversations/{conversation.public_id}/", headers=[(b"origin", b"https://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected


# Bad frames


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2]",
        json.dumps({"action": "delete"}),
        json.dumps({"message": "no action"}),
    ],
    ids=["not-json", "not-an-object", "unknown-action", "no-action"],
)
async def test_malformed_frame_closes_with_4400_and_saves_nothing(alice, make_persona, open_socket, frame):
    conversation = await start_chat(alice, make_persona)
    before = await message_count()
    socket = await open_socket(alice, conversation.public_id)
    await socket.communicator.send_to(text_data=frame)
    alert = await socket.receive()
    assert 'id="composer-alert"' in alert
    closed = await socket.communicator.receive_output(2)
    assert closed["type"] == "websocket.close" and closed["code"] == 4400
    assert await message_count() == before


async def test_binary_frame_closes_with_4400(alice, make_persona, open_socket):
    conversation = await start_chat(alice, make_persona)
    socket = await open_socket(alice, conversation.public_id)
    await socket.communicator.send_to(bytes_data=b"\x00\x01")
    await socket.receive()
    closed = await socket.communicator.receive_output(2)
    assert closed["code"] == 4400


async def test_oversized_frame_closes_with_4400(alice, make_persona, open_socket, settings):
    settings.CHAT_MAX_FRAME_BYTES = 2048
    conversation = await start_chat(alice, make_persona)
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("x" * 4000)
    await socket.receive_until("too large")
    closed = await socket.communicator.receive_output(2)
    assert closed["code"] == 4400
    assert not await Message.objects.filter(role="user").aexists()


@pytest.mark.parametrize(
    ("text", "expected"),
    # A message that is not text is a malformed frame (tests/conversations/test_frames.py).
    [("", "Type a message"), ("   \n ", "Type a message"), ("x" * 32_001, "the limit is 32000")],
    ids=["empty", "blank", "too-long"],
)
async def test_bad_message_is_refused_with_a_message_and_nothing_saved(
    alice, make_persona, open_socket, text, expected
):
    conversation = await start_chat(alice, make_persona)
    before = await message_count()
    socket = await open_socket(alice, conversation.public_id)
    await socket.send(text)
    alert = await socket.receive()
    assert 'id="composer-alert"' in alert and expected in alert
    assert await message_count() == before
    # The socket stays usable: the next, valid message goes through.
    await socket.send("hello")
    await socket.receive_final("complete")
    assert await Message.objects.filter(role="user").acount() == 1


async def test_message_of_exactly_the_limit_is_accepted(alice, make_persona, open_socket):
    conversation = await start_chat(alice, make_persona, "long:2")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("y" * 32_000)
    await socket.receive_final("complete")
    assert await Message.objects.filter(role="user", content="y" * 32_000).aexists()


# Streaming a reply


async def test_send_streams_deltas_in_order_then_the_rendered_reply(alice, make_persona, open_socket, upstream):
    conversation = await start_chat(alice, make_persona, "long:40")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("Count for me")
    frames = await socket.receive_final("complete")

    added = frames[1]  # frames[0] clears the alert
    assert 'data-role="user"' in added and "Count for me" in added
    assert 'data-role="assistant" data-status="streaming"' in added
    texts = delta_texts(frames)
    assert "".join(texts) == "".join(f"w{i} " for i in range(40))
    assert texts[0] == "w0 "  # the first delta goes out alone, at once
    final = frames[-1]
    assert 'hx-swap-oob="true"' in final and "<p>w0 w1" in final

    reply = await wait_for_reply()
    assert reply.status == Message.Status.COMPLETE
    assert reply.content == "".join(f"w{i} " for i in range(40))
    assert reply.content_html.startswith("<p>w0 w1")
    assert reply.finish_reason == "stop"
    assert reply.model_id == "long:40"
    assert reply.completion_tokens == 40
    assert reply.prompt_tokens is not None and reply.prompt_tokens > 0
    assert reply.ttft_ms is not None and reply.duration_ms >= reply.ttft_ms
    saved = await sync_to_async(list)(Message.objects.filter(conversation=conversation).values_list("role", "status"))
    assert saved == [("assistant", "complete"), ("user", "complete"), ("assistant", "complete")]


COUNTED = "".join(f"w{i} " for i in range(30))


async def test_a_replys_upstream_is_read_once_a_window_not_once_a_chunk(
    alice, make_persona, open_socket, upstream_reads, settings
):
    settings.CHAT_COALESCE_MS = 100
    conversation = await start_chat(alice, make_persona, "long:30+delay:20")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("Count for me")  # Alone in its hop: its request is opened early (generation.EarlyStream).
    frames = await socket.receive_final("complete")
    await replies_settled()  # The title's request too.

    assert "".join(delta_texts(frames)) == COUNTED and (await wait_for_reply()).content == COUNTED
    # The headers and the first delta, then 32 events 20 ms apart, read about every 100 ms (each alone before the
    # generation took the early stream); the title's answer. Read as it comes: about 35.
    assert upstream_reads.count <= 18


async def test_replies_started_together_read_their_upstream_once_a_window(
    alice, make_persona, upstream_reads, settings
):
    settings.CHAT_COALESCE_MS = 100
    conversation = await start_chat(alice, make_persona, "long:30+delay:20")
    requested = await sync_to_async(services.replies_request)(
        [{"user": alice, "public_id": conversation.public_id, "action": "send", "text": "Count for me"}]
    )
    await generation.start_reply(requested[0].job).task  # Not opened early: the generation opens it.
    await replies_settled()

    assert (await wait_for_reply()).content == COUNTED
    assert upstream_reads.count <= 18


async def _sent_behind_the_first(sockets, texts: list[str], first_hop: threading.Event) -> None:
    """Send `texts[0]` on `sockets[0]`, wait until its hop has started (`first_hop` set), then send each other text
    on its socket and wait until they all queue for the next hop."""
    await sockets[0].send(texts[0])
    await async_wait_until(first_hop.is_set, timeout_s=5, message="the first send's hop did not start")
    for socket, text in zip(sockets[1:], texts[1:], strict=True):
        await socket.send(text)
    queue = consumers._request_if_signed_in._queues[asyncio.get_running_loop()]
    await async_wait_until(lambda: len(queue.waiting) == len(texts) - 1, timeout_s=5, message="the sends did not queue")


async def test_sends_that_come_while_a_send_is_saved_are_saved_together_in_one_hop(
    alice, bob, make_persona, open_socket, monkeypatch
):
    """A class's sends queue for the one thread that runs the ORM: those queued meanwhile go in one batch."""
    hops: list[list[str]] = []
    first_hop, release = threading.Event(), threading.Event()
    save = services.replies_request

    def recorded(requests):
        hops.append([request["text"] for request in requests])
        if len(hops) == 1:
            first_hop.set()
            assert release.wait(5)
        return save(requests)

    monkeypatch.setattr(services, "replies_request", recorded)
    owners = [alice, alice, bob, bob]
    chats = [await start_chat(owner, make_persona, "long:3") for owner in owners]
    sockets = [await open_socket(owner, chat.public_id) for owner, chat in zip(owners, chats, strict=True)]
    await _sent_behind_the_first(sockets, ["q0", "q1", "q2", "q3"], first_hop)
    release.set()
    for socket in sockets:
        await socket.receive_final("complete")
    assert hops == [["q0"], ["q1", "q2", "q3"]]
    for i, chat in enumerate(chats):
        question = await Message.objects.filter(conversation=chat, role="user").aget()
        assert question.content == f"q{i}"


async def test_sends_that_come_while_a_hop_checks_its_sign_ins_go_in_that_hop_each_checked(
    alice, bob, make_persona, open_socket, monkeypatch
):
    """Not in the next hop, after this one and the starts of its replies (`Hop.more`): a class's sends trickle in."""
    armed, checking, release = threading.Event(), threading.Event(), threading.Event()
    signed_in = SignInCheck.signed_in
    checked: list[str] = []  # The user of each check once armed.

    def held(self):
        if armed.is_set():
            checked.append(self.scope["user"].username)
        if armed.is_set() and not checking.is_set():
            checking.set()
            assert release.wait(5)
        return signed_in(self)

    hops: list[list[str]] = []
    save = services.replies_request

    def recorded(requests):
        hops.append([request["text"] for request in requests])
        return save(requests)

    monkeypatch.setattr(SignInCheck, "signed_in", held)
    monkeypatch.setattr(services, "replies_request", recorded)
    owners = [alice, alice, bob]
    chats = [await start_chat(owner, make_persona, "long:3") for owner in owners]
    sockets = [await open_socket(owner, chat.public_id) for owner, chat in zip(owners, chats, strict=True)]
    for socket in sockets:  # Answered once the socket has opened, and checked its sign-in.
        await socket.communicator.send_json_to({"action": "sync", "streaming": [], "full": True})
        assert 'id="messages"' in await socket.receive()
    armed.set()
    await _sent_behind_the_first(sockets, ["q0", "q1", "q2"], checking)
    release.set()
    for socket in sockets:
        await socket.receive_final("complete")
    assert hops == [["q0", "q1", "q2"]]
    assert checked == [alice.username, alice.username, bob.username]  # Each send's sign-in, the late ones too.
    questions = await sync_to_async(list)(Message.objects.filter(role="user").values_list("content", flat=True))
    assert sorted(questions) == ["q0", "q1", "q2"]


async def test_a_hop_of_several_sends_lets_the_event_loop_read_more_before_it_takes_them_and_a_lone_send_does_not(
    alice, bob, make_persona, open_socket, monkeypatch
):
    """The interpreter lock is the hop's while it checks: frames that came meanwhile wait unread (`Hop.more`)."""
    paused: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(consumers, "time", SimpleNamespace(sleep=lambda s: paused.append(s) or real_sleep(s)))
    first_hop, release = _first_hop_held(monkeypatch, services.replies_request)
    owners = [alice, alice, bob]
    chats = [await start_chat(owner, make_persona, "long:3") for owner in owners]
    sockets = [await open_socket(owner, chat.public_id) for owner, chat in zip(owners, chats, strict=True)]
    await _sent_behind_the_first(sockets, ["q0", "q1", "q2"], first_hop)
    assert paused == []  # The first hop, held, had its send alone; the next has not begun.
    release.set()
    for socket in sockets:
        await socket.receive_final("complete")
    assert paused == [consumers.SEND_GATHER_PAUSE_S]  # Once, before the take that found no more.


def _first_hop_held(monkeypatch, save) -> tuple[threading.Event, threading.Event]:
    """Make `services.replies_request` run `save`, its first hop held until released; return (first hop, release).

    The sends that come while the first hop is held queue, and go together in the next.
    """
    first_hop, release = threading.Event(), threading.Event()

    def held(requests):
        if not first_hop.is_set():
            first_hop.set()
            assert release.wait(5)
        return save(requests)

    monkeypatch.setattr(services, "replies_request", held)
    return first_hop, release


async def test_sends_saved_together_are_each_shown_and_refused_in_their_own_page_language(
    alice, bob, make_persona, open_socket, monkeypatch, settings
):
    """A hop of a class's sends renders each one's bubbles and refusals in the language of the page it came from."""
    first_hop, release = _first_hop_held(monkeypatch, services.replies_request)
    settings.CHAT_MAX_MESSAGE_CHARS = 10
    await Preference.objects.acreate(user=bob, language="zh-hans")
    owners = [alice, alice, bob, bob]
    chats = [await start_chat(owner, make_persona, "long:3") for owner in owners]
    sockets = [await open_socket(owner, chat.public_id) for owner, chat in zip(owners, chats, strict=True)]
    await _sent_behind_the_first(sockets, ["q0", "q1", "q2", "far too long for the limit"], first_hop)
    release.set()
    english = "".join(await sockets[1].receive_until('data-role="user"'))
    chinese = "".join(await sockets[2].receive_until('data-role="user"'))
    assert ">Edit</button>" in english and "编辑" not in english
    assert ">编辑</button>" in chinese and ">Edit</button>" not in chinese
    refusal = "".join(await sockets[3].receive_until("composer-alert"))
    assert "上限为 10" in refusal, refusal
    for socket in sockets[:3]:
        await socket.receive_final("complete")


async def test_a_failed_transaction_of_one_language_in_a_hop_leaves_the_other_languages_sends_saved(
    alice, bob, make_persona, open_socket, monkeypatch
):
    """Each language's sends of a hop are a transaction of their own: one failing fails its sends only."""
    save = services.replies_request
    calls: list[tuple[list[str], bool]] = []

    def failing_in_chinese(requests):
        calls.append(([r["text"] for r in requests], any(r.get("on_request") for r in requests)))
        if translation.get_language() == "zh-hans":
            raise OperationalError("database is locked")
        return save(requests)

    first_hop, release = _first_hop_held(monkeypatch, failing_in_chinese)
    await Preference.objects.acreate(user=bob, language="zh-hans")
    owners = [alice, bob, alice]
    chats = [await start_chat(owner, make_persona, "long:3") for owner in owners]
    sockets = [await open_socket(owner, chat.public_id) for owner, chat in zip(owners, chats, strict=True)]
    await _sent_behind_the_first(sockets, ["q0", "q1", "q2"], first_hop)
    release.set()
    await sockets[0].receive_final("complete")
    await sockets[2].receive_final("complete")
    # A hop of several languages opens no request early: only a send alone in its hop does.
    assert calls == [(["q0"], True), (["q1"], False), (["q2"], False)]
    questions = await sync_to_async(list)(Message.objects.filter(role="user").values_list("content", flat=True))
    assert sorted(questions) == ["q0", "q2"]


async def test_the_next_hop_waits_until_the_replies_of_the_last_one_have_handed_their_requests_over(
    alice, bob, make_persona, open_socket, monkeypatch
):
    """Else the hop and the starts of those replies take the interpreter lock turn about (bench/README.md)."""
    hops: list[list[str]] = []
    handed_over: list[str] = []  # The questions whose requests the SDK had handed to its transport.
    at_hop_start: list[list[str]] = []
    hop_started, release = [threading.Event(), threading.Event()], [threading.Event(), threading.Event()]
    save = services.replies_request

    def recorded(requests):
        hops.append([request["text"] for request in requests])
        at_hop_start.append(sorted(handed_over))
        if len(hops) <= 2:
            hop_started[len(hops) - 1].set()
            assert release[len(hops) - 1].wait(5)
        return save(requests)

    stream_chat = llm.stream_chat

    async def recording(config, request, *, on_sending=None, pace_s=None):
        question = request.messages[-1]["content"]
        if question in ("q1", "q2"):
            await asyncio.sleep(0.05)  # A slow start: the next hop still waits for it, within the bound.

        def sending():
            handed_over.append(question)
            if on_sending is not None:
                on_sending()

        async for event in stream_chat(config, request, on_sending=sending, pace_s=pace_s):
            yield event

    monkeypatch.setattr(services, "replies_request", recorded)
    monkeypatch.setattr(llm, "stream_chat", recording)
    owners = [alice, alice, bob, bob]
    chats = [await start_chat(owner, make_persona, "long:3") for owner in owners]
    sockets = [await open_socket(owner, chat.public_id) for owner, chat in zip(owners, chats, strict=True)]
    await _sent_behind_the_first(sockets[:3], ["q0", "q1", "q2"], hop_started[0])
    release[0].set()
    await async_wait_until(hop_started[1].is_set, timeout_s=5, message="the second hop did not start")
    await sockets[3].send("q3")
    queue = consumers._request_if_signed_in._queues[asyncio.get_running_loop()]
    await async_wait_until(lambda: len(queue.waiting) == 1, timeout_s=5)
    release[1].set()
    for socket in sockets:
        await socket.receive_final("complete")
    assert hops == [["q0"], ["q1", "q2"], ["q3"]]
    assert at_hop_start == [[], ["q0"], ["q0", "q1", "q2"]]


async def test_a_reply_that_never_starts_holds_the_next_hop_only_up_to_the_bound():
    """Its socket went away before the reply started: the wait ends at its bound, and forgets the reply."""
    never = str(uuid.uuid4())
    await asyncio.wait_for(generation.requests_handed_over([never], timeout_s=0.05), 5)
    assert never not in generation._handover_waiters


async def test_relaying_events_never_queues_on_the_database_thread(alice, make_persona, open_socket, monkeypatch):
    # Channels' dispatch closes stale connections on the ORM's one thread before every event; with a
    # hundred replies streaming, every delta then waited behind the database work (bench/load.py).
    calls = []

    async def counted() -> None:
        calls.append(1)

    monkeypatch.setattr("channels.consumer.aclose_old_connections", counted)
    conversation = await start_chat(alice, make_persona, "long:20")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("Count for me")
    frames = await socket.receive_final("complete")
    assert len(delta_texts(frames)) >= 1
    assert calls == []


async def test_a_tab_that_misses_deltas_resyncs_at_once_instead_of_showing_a_hole(
    alice, make_persona, open_socket, monkeypatch
):
    # A channel layer over capacity drops messages silently (Channels' group_send skips full channels).
    from conversations.generation import ReplyGenerator

    send_delta = ReplyGenerator._send_delta

    async def dropping(self, seq: int, text: str) -> None:
        if seq not in (3, 4):
            await send_delta(self, seq, text)

    monkeypatch.setattr(ReplyGenerator, "_send_delta", dropping)
    conversation = await start_chat(alice, make_persona, "long:12+delay:30")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("Count for me")
    frames = await socket.receive_final("complete")
    shown = ""  # What the bubble shows before the final one replaces it.
    for frame in frames:
        if match := re.search(r'hx-swap-oob="innerHTML">(.*?)</div>', frame, re.S):
            shown = match.group(1)
        shown += "".join(delta_texts([frame]))
    assert any('hx-swap-oob="innerHTML"' in frame and "-body" in frame for frame in frames)
    assert shown == "".join(f"w{i} " for i in range(12))


async def test_deltas_are_coalesced_when_the_upstream_is_fast(alice, make_persona, open_socket, settings):
    settings.CHAT_COALESCE_MS = 50
    conversation = await start_chat(alice, make_persona, "long:400+delay:1")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("go")
    frames = await socket.receive_final("complete", timeout=20)
    texts = delta_texts(frames)
    assert "".join(texts) == "".join(f"w{i} " for i in range(400))
    assert len(texts) < 100  # 400 upstream deltas, far fewer frames


async def test_each_window_is_as_wide_as_the_replies_streaming_in_the_process_ask(
    alice, make_persona, open_socket, monkeypatch
):
    window_s = coalescing.window_s
    seen: list[int] = []

    def recorded(*, streaming: int) -> float:
        seen.append(streaming)
        return window_s(streaming=streaming)

    monkeypatch.setattr(coalescing, "window_s", recorded)
    sockets = []
    for _ in range(2):
        conversation = await start_chat(alice, make_persona, "long:40+delay:10")
        sockets.append(await open_socket(alice, conversation.public_id))
    for socket in sockets:
        await socket.send("go")
    for socket in sockets:
        await socket.receive_final("complete", timeout=20)
    assert max(seen) == 2 and min(seen) >= 1  # Both replies streamed at once; each counts itself.
    assert not generation._streaming  # Both ended.


async def test_upstream_request_carries_persona_prompt_greeting_history_and_params(
    alice, make_persona, open_socket, upstream
):
    conversation = await start_chat(
        alice,
        make_persona,
        "long:1",
        system_prompt="You are terse.",
        greeting="Hi, I am Terse.",
        temperature=0.3,
        top_p=0.9,
        max_tokens=77,
        history_limit=2,
    )
    socket = await open_socket(alice, conversation.public_id)
    for text in ["one", "two", "three"]:
        await socket.send(text)
        await socket.receive_final("complete")

    body = streamed_requests(upstream)[-1].body
    assert body["model"] == "long:1"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9 and body["max_tokens"] == 77
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "assistant", "content": "Hi, I am Terse."},
        {"role": "assistant", "content": "w0 "},  # the reply to "two"; "one" fell out of the last 2
        {"role": "user", "content": "three"},
    ]
    assert streamed_requests(upstream)[-1].headers["authorization"] == "Bearer sk-test-secret-key-1234"


async def test_title_is_the_first_user_message_cut_to_one_line(alice, make_persona, open_socket, monkeypatch):
    async def no_generated_title(**kwargs):
        return ""

    monkeypatch.setattr(titles, "title_generate", no_generated_title)
    conversation = await start_chat(alice, make_persona, "long:1")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("\n  Plan a trip to Kyoto\nwith kids in spring")
    frames = await socket.receive_final("complete")
    assert any(
        f'id="conversation-{conversation.public_id}-title" hx-swap-oob="true">Plan a trip to Kyoto<' in f
        for f in frames
    )
    await conversation.arefresh_from_db()
    assert conversation.title == "Plan a trip to Kyoto"


async def test_user_and_model_text_reach_the_socket_escaped(alice, make_persona, open_socket):
    conversation = await start_chat(alice, make_persona)  # the echo reply quotes the user message
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("<img src=x onerror=alert(1)>")
    frames = await socket.receive_final("complete")
    joined = "".join(frames)
    assert "<img src=x" not in joined
    assert "&lt;img src=x onerror=alert(1)&gt;" in joined


async def test_idempotency_key_makes_a_double_send_one_message(alice, make_persona, open_socket, upstream):
    conversation = await start_chat(alice, make_persona, "long:3")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("once", idempotency_key="k-1")
    await socket.send("once", idempotency_key="k-1")
    await socket.receive_final("complete")
    await socket.handled()  # the second send too
    assert await Message.objects.filter(role="user").acount() == 1
    assert len(streamed_requests(upstream)) == 1


def _reply_built_once_asked(upstream, asked: list[bool], *, then_refuse: bool = False):
    """Wrap `services._reply_unsaved` (the reply, built just before it is written) to wait (in the ORM thread)
    until the upstream got the reply's request first."""
    reply_unsaved = services._reply_unsaved

    def wrapped(**kwargs):
        try:
            asked.append(bool(wait_until(lambda: streamed_requests(upstream), timeout_s=5)))
        except TimeoutError:
            asked.append(False)
        if then_refuse:
            raise ValidationError("Refused after its request was opened.")
        return reply_unsaved(**kwargs)

    return wrapped


async def test_a_lone_send_asks_the_upstream_before_its_reply_is_written(
    alice, make_persona, open_socket, upstream, monkeypatch
):
    """The request leaves while the hop writes (`generation.EarlyStream`), and the generation reads that stream."""
    conversation = await start_chat(alice, make_persona, "long:5")
    asked: list[bool] = []
    monkeypatch.setattr(services, "_reply_unsaved", _reply_built_once_asked(upstream, asked))
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("Count")
    frames = await socket.receive_final("complete")
    assert asked == [True]
    assert "".join(delta_texts(frames)) == "w0 w1 w2 w3 w4 "
    assert len(streamed_requests(upstream)) == 1
    assert (await wait_for_reply()).content == "w0 w1 w2 w3 w4 "


async def test_a_send_refused_after_its_request_was_opened_closes_that_request(
    alice, make_persona, open_socket, upstream, monkeypatch
):
    # The first token would come after 10 s: the request is closed at once, not once its stream is collected.
    conversation = await start_chat(alice, make_persona, "long:5+delay:10000")
    asked: list[bool] = []
    monkeypatch.setattr(services, "_reply_unsaved", _reply_built_once_asked(upstream, asked, then_refuse=True))
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("go on")
    frames = await socket.handled()
    assert asked == [True] and "Refused after its request was opened." in "".join(frames)
    [hangup] = await async_wait_until(lambda: upstream.hangups, timeout_s=2)
    assert (hangup.model, hangup.sent) == ("long:5+delay:10000", 0)
    assert await message_count() == 1  # The greeting: nothing of the send stays saved.


# The reply belongs to the conversation, not the socket


async def test_closing_the_tab_mid_reply_still_saves_the_whole_reply(alice, make_persona, open_socket):
    conversation = await start_chat(alice, make_persona, "long:60+delay:10")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("long one")
    await socket.receive_until("beforeend")
    await socket.close()
    reply = await wait_for_reply(timeout=15)
    assert reply.status == Message.Status.COMPLETE
    assert reply.content == "".join(f"w{i} " for i in range(60))


async def test_a_second_tab_sees_the_reply_live(alice, make_persona, open_socket):
    conversation = await start_chat(alice, make_persona, "long:20+delay:5")
    first = await open_socket(alice, conversation.public_id)
    second = await open_socket(alice, conversation.public_id)
    await first.send("both tabs")
    frames = await second.receive_final("complete")
    assert "both tabs" in frames[0]
    assert "".join(delta_texts(frames)) == "".join(f"w{i} " for i in range(20))


async def test_the_asking_tab_and_every_other_tab_show_the_new_bubbles_once(alice, make_persona, open_socket):
    # The asking tab is sent them straight, before the reply starts; the group's copy is for the others only.
    conversation = await start_chat(alice, make_persona, "long:3")
    first = await open_socket(alice, conversation.public_id)
    second = await open_socket(alice, conversation.public_id)
    await first.send("shown once")
    for socket in (first, second):
        frames = await socket.receive_final("complete")
        assert sum(frame.count('data-role="user"') for frame in frames) == 1
        assert sum(frame.count('data-role="assistant"') for frame in frames) == 2  # Streaming, then final.


async def test_a_tab_opened_mid_reply_gets_the_text_so_far_then_the_rest(alice, make_persona, open_socket):
    conversation = await start_chat(alice, make_persona, "long:80+delay:10")
    first = await open_socket(alice, conversation.public_id)
    await first.send("join me")
    await first.receive_until("w5 ")
    late = await open_socket(alice, conversation.public_id)
    frames = await late.receive_final("complete", timeout=15)
    snapshot = re.search(r'hx-swap-oob="innerHTML">(.*?)</div>', frames[0], re.S)
    assert snapshot, frames[0]
    seen = snapshot.group(1) + "".join(delta_texts(frames[1:]))
    assert seen == "".join(f"w{i} " for i in range(80))  # nothing missing, nothing twice


async def test_stop_ends_the_reply_and_keeps_the_partial_text(alice, make_persona, open_socket):
    conversation = await start_chat(alice, make_persona, "long:500+delay:20")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("go on forever")
    await socket.receive_until("w2 ")
    await socket.stop()
    frames = await socket.receive_final("stopped")
    assert "Stopped." in frames[-1]
    reply = await wait_for_reply()
    assert reply.status == Message.Status.STOPPED
    assert reply.content.startswith("w0 w1 w2 ")
    assert len(reply.content.split()) < 500


async def test_a_reply_stopped_before_its_usage_counts_estimated_tokens_toward_the_quota(
    alice, make_persona, open_socket
):
    from conversations import quotas

    conversation = await start_chat(alice, make_persona, "long:200+delay:20")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("Count for me")
    await socket.receive_until("w5 ")
    await socket.stop()
    await socket.receive_final("stopped")
    reply = await wait_for_reply()
    assert reply.tokens_estimated and reply.prompt_tokens > 0
    assert reply.completion_tokens >= len(reply.content.split())  # "w12 " is at least one token
    status = await sync_to_async(quotas.quota_status)(user=alice)
    assert status.usage.tokens_today == reply.prompt_tokens + reply.completion_tokens
    assert "(estimated)" in socket.received[-1]  # The final bubble says so.


async def test_stop_from_another_tab_stops_the_reply(alice, make_persona, open_socket):
    conversation = await start_chat(alice, make_persona, "long:500+delay:20")
    sender = await open_socket(alice, conversation.public_id)
    other = await open_socket(alice, conversation.public_id)
    await sender.send("go")
    await other.receive_until("w1 ")
    await other.stop()
    await sender.receive_final("stopped")
    assert (await wait_for_reply()).status == Message.Status.STOPPED


# Database writes


async def test_database_writes_per_reply_stay_at_five_whatever_its_length(
    alice, make_persona, open_socket, write_counter, settings
):
    # Checkpoints are per interval of time, tested on their own; here the
    # interval is out of reach so the count shows what grows with length.
    settings.CHAT_CHECKPOINT_S = 600
    for n in (5, 1500):
        conversation = await start_chat(alice, make_persona, f"long:{n}")
        # A user-set title: the one-off title generation is not part of the reply.
        await Conversation.objects.filter(pk=conversation.pk).aupdate(title_source="user")
        socket = await open_socket(alice, conversation.public_id)
        write_counter.clear()
        await socket.send("count writes")
        await socket.receive_final("complete", timeout=30)
        reply = await wait_for_reply({"conversation": conversation})
        assert len(reply.content.split()) == n
        user_message_writes = [
            (sql, params) for sql, params in write_counter if sql.startswith("INSERT") and "user" in params
        ]
        reply_writes = [write for write in write_counter if write not in user_message_writes]
        assert len(user_message_writes) == 1, write_counter
        # The empty reply, the conversation's title and time, the finished reply, the day's usage
        # (an UPDATE, and on the day's first reply an INSERT after it found no row).
        assert len(reply_writes) <= 5, reply_writes


async def test_no_frame_the_site_sends_exceeds_the_limit_and_a_huge_reply_still_ends(
    alice, make_persona, open_socket, settings
):
    settings.CHAT_MAX_SENT_FRAME_BYTES = 4096
    conversation = await start_chat(alice, make_persona, "long:2000")  # About 12 KB, fast: big coalesced deltas.
    socket = await open_socket(alice, conversation.public_id)
    late = await open_socket(alice, conversation.public_id)
    await socket.send("Count for me")
    await late.communicator.send_json_to({"action": "sync", "streaming": [], "full": True})
    await socket.receive_until('hx-select="#messages"')
    for tab in (socket, late):
        try:
            while True:
                await tab.receive(timeout=0.5)
        except TimeoutError:
            pass
        assert all(len(frame.encode()) <= 4096 for frame in tab.received)
    texts = "".join(delta_texts(socket.received))
    assert texts == "".join(f"w{i} " for i in range(2000))
    # The final bubble did not fit: the page fetches the messages over HTTP instead.
    refetch = [frame for frame in socket.received if 'hx-select="#messages"' in frame]
    assert refetch and f'hx-get="/c/{conversation.public_id}/"' in refetch[-1]
    reply = await wait_for_reply()
    assert reply.status == Message.Status.COMPLETE and len(reply.content_html) > 4096


async def test_frames_queued_behind_a_refused_one_get_no_answer(alice, make_persona, open_socket):
    # Each answer would go to a closed socket: daphne logs an error for every one (a flood of bad frames).
    conversation = await start_chat(alice, make_persona)
    socket = await open_socket(alice, conversation.public_id)
    for _ in range(3):
        await socket.communicator.send_to(text_data='{"action": 1}')
    outputs = []
    while not await socket.communicator.receive_nothing(timeout=0.3):
        outputs.append(await socket.communicator.receive_output())
    assert [output["type"] for output in outputs] == ["websocket.send", "websocket.close"]
    assert outputs[1]["code"] == 4400
