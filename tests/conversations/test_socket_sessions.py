"""Open sockets follow their user's sessions: capped per user, closed at sign-out and account changes."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.sessions.backends.base import SessionBase
from django.test import Client

from chatsite.asgi import application
from tests.servers import session_cookie
from tests.sockets import start_chat

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(cookie: str, conversation_id) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application,
        f"/ws/conversations/{conversation_id}/",
        headers=[(b"origin", b"http://127.0.0.1"), (b"cookie", cookie.encode())],
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def still_open(communicator: WebsocketCommunicator) -> bool:
    return await communicator.receive_nothing(timeout=0.3)


async def closed_with(communicator: WebsocketCommunicator) -> int | None:
    while True:
        frame = await communicator.receive_output(3)
        if frame["type"] == "websocket.close":
            return frame.get("code")


async def test_sockets_beyond_the_per_user_cap_are_closed_with_a_reason(alice, bob, make_persona, settings):
    settings.CHAT_MAX_SOCKETS_PER_USER = 2
    conversation = await start_chat(alice, make_persona)
    cookie = await sync_to_async(session_cookie)(alice)
    first, second = await connect(cookie, conversation.public_id), await connect(cookie, conversation.public_id)
    third = await connect(cookie, conversation.public_id)
    alert = await third.receive_output(3)
    assert "Too many open chat tabs" in alert["text"]
    assert await closed_with(third) == 4429
    # Another user is not counted against alice, and a closed tab frees its place.
    theirs = await start_chat(bob, make_persona)
    bobs = await connect(await sync_to_async(session_cookie)(bob), theirs.public_id)
    assert await still_open(bobs)
    await second.disconnect()
    fourth = await connect(cookie, conversation.public_id)
    assert await still_open(fourth) and await still_open(first)
    for communicator in (first, fourth, bobs):
        await communicator.disconnect()


async def test_signing_out_closes_that_sessions_sockets_and_no_others(alice, make_persona):
    conversation = await start_chat(alice, make_persona)
    leaving, staying = [await sync_to_async(session_cookie)(alice) for _ in range(2)]
    leaving_socket = await connect(leaving, conversation.public_id)
    staying_socket = await connect(staying, conversation.public_id)

    def sign_out() -> int:
        client = Client()
        client.cookies[django_settings.SESSION_COOKIE_NAME] = leaving.split("=", 1)[1]
        return client.post("/accounts/logout/").status_code

    assert await sync_to_async(sign_out)() == 302
    assert await closed_with(leaving_socket) == 4401  # Without the socket sending anything.
    assert await still_open(staying_socket)
    await staying_socket.disconnect()


@pytest.mark.parametrize("change", ["password", "deactivation"])
async def test_a_password_change_or_deactivation_closes_the_users_sockets(alice, bob, make_persona, change):
    conversation = await start_chat(alice, make_persona)
    socket = await connect(await sync_to_async(session_cookie)(alice), conversation.public_id)
    theirs = await start_chat(bob, make_persona)
    bobs = await connect(await sync_to_async(session_cookie)(bob), theirs.public_id)

    def apply() -> None:
        if change == "password":
            alice.set_password("a-new-password-2")
        else:
            alice.is_active = False
        alice.save()

    await sync_to_async(apply)()
    assert await closed_with(socket) == 4401
    assert await still_open(bobs)
    await bobs.disconnect()


async def test_the_frames_a_socket_sends_do_not_read_its_session(alice, make_persona, open_socket, monkeypatch):
    # Channels' own session middleware reads the session for every frame sent, to save it on HTTP responses only.
    reads = []
    is_empty = SessionBase.is_empty
    monkeypatch.setattr(SessionBase, "is_empty", lambda session: reads.append(session) or is_empty(session))
    conversation = await start_chat(alice, make_persona, "long:20")
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("hello")
    frames = await socket.receive_final()

    assert len(frames) > 3 and "w19" in frames[-1]
    assert reads == []
