"""Two daphne processes serve one site through Redis: a reply streamed by one reaches a socket held by the other.

Needs a real Redis (REDIS_URL) and PostgreSQL (DATABASE_URL), as `.ci/run`
provides; skipped otherwise.
"""

import asyncio
import json
import os
import re

import pytest
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect

from conversations import services
from conversations.models import Message
from tests.servers import DaphneServer, session_cookie

pytestmark = [
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.environ.get("REDIS_URL") or settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="needs REDIS_URL and a PostgreSQL DATABASE_URL (see .ci/run)",
    ),
]

DELTA = re.compile(r'<div id="message-[0-9a-f-]{36}-body" hx-swap-oob="beforeend">(.*?)</div>', re.DOTALL)
FINAL = 'data-status="complete" hx-swap-oob="true"'


async def _socket(server: DaphneServer, conversation, cookie: str) -> ClientConnection:
    return await connect(
        server.ws_url(f"/ws/conversations/{conversation.public_id}/"),
        origin=server.origin,
        additional_headers={"Cookie": cookie},
        open_timeout=10,
    )


async def _joined(ws: ClientConnection) -> None:
    """Wait until the consumer has finished connect(), group membership included.

    The handshake completes at accept(), before the consumer joins the group;
    a blank message is refused with an alert to this tab only, and frames are
    handled in order, so the alert proves connect() is done.
    """
    await ws.send(json.dumps({"action": "send", "message": " "}))
    alert = await asyncio.wait_for(ws.recv(), 10)
    assert 'id="composer-alert"' in alert and "Type a message" in alert


async def _receive_until_final(ws: ClientConnection, timeout_s: float = 20) -> list[str]:
    frames = []
    async with asyncio.timeout(timeout_s):
        while not frames or FINAL not in frames[-1]:
            frames.append(await ws.recv())
    return frames


def test_reply_streamed_by_one_process_reaches_a_socket_on_another(alice, make_persona):
    persona = make_persona("long:30+delay:5")
    conversation = services.conversation_create(owner=alice, persona=persona)
    cookie = session_cookie(alice)
    expected = "".join(f"w{i} " for i in range(30))

    async def chat(a: DaphneServer, b: DaphneServer) -> tuple[list[str], list[str]]:
        async with await _socket(a, conversation, cookie) as ws_a, await _socket(b, conversation, cookie) as ws_b:
            await _joined(ws_a)
            await _joined(ws_b)
            await ws_a.send(json.dumps({"action": "send", "message": "hi"}))
            return await asyncio.gather(_receive_until_final(ws_a), _receive_until_final(ws_b))

    with DaphneServer() as a, DaphneServer() as b:
        frames_a, frames_b = asyncio.run(chat(a, b))

    # The generation ran in process A (it took the send); B saw it only through Redis.
    assert any('data-role="user"' in frame and "hi" in frame for frame in frames_b)
    deltas_b = [text for frame in frames_b for text in DELTA.findall(frame)]
    assert deltas_b, frames_b
    assert "".join(deltas_b) == expected
    assert FINAL in frames_b[-1] and "w29" in frames_b[-1]
    assert "".join(text for frame in frames_a for text in DELTA.findall(frame)) == expected
    reply = Message.objects.get(
        conversation=conversation, role=Message.Role.ASSISTANT, status=Message.Status.COMPLETE, content=expected
    )
    assert reply.completion_tokens == 30


def test_an_idle_socket_outlives_the_channel_layers_blocking_receive(alice, make_persona):
    # channels_redis waits on an idle channel with BZPOPMIN for 5 s; redis-py 8's default 5 s read timeout
    # used to cut that wait and tear the socket down (channels_redis issue #422).
    conversation = services.conversation_create(owner=alice, persona=make_persona("long:3"))
    cookie = session_cookie(alice)

    async def idle_then_chat(server: DaphneServer) -> list[str]:
        async with await _socket(server, conversation, cookie) as ws:
            await _joined(ws)
            await asyncio.sleep(7)
            await ws.send(json.dumps({"action": "send", "message": "still there?"}))
            return await _receive_until_final(ws)

    with DaphneServer() as server:
        frames = asyncio.run(idle_then_chat(server))
        log = server.log()
    assert FINAL in frames[-1] and "w2" in frames[-1]
    assert "Timeout reading" not in log
