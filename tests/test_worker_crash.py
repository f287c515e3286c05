"""A daphne worker killed mid-reply: the checkpointed text survives, the reply shows as interrupted, nothing stuck."""

import asyncio
import json
import re
import time

import pytest
from django.test import Client
from websockets.asyncio.client import connect

from conversations import services
from conversations.models import Message
from tests.servers import DaphneServer, session_cookie
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_killed_worker_leaves_an_interrupted_reply_with_its_checkpointed_text(alice, make_persona, settings):
    persona = make_persona("long:400+delay:20")  # about 8 s of reply
    conversation = services.conversation_create(owner=alice, persona=persona)
    cookie = session_cookie(alice)

    async def send_and_watch(server: DaphneServer) -> str:
        url = server.ws_url(f"/ws/conversations/{conversation.public_id}/")
        async with connect(url, origin=server.origin, additional_headers={"Cookie": cookie}) as ws:
            await ws.send(json.dumps({"action": "send", "message": "a long one please"}))
            seen = ""
            async with asyncio.timeout(20):
                while "w60 " not in seen:
                    seen += await ws.recv()
            return seen

    # Checkpoint every second; a heartbeat older than 5 s means the worker died.
    with DaphneServer(env={"CHAT_CHECKPOINT_S": "1", "CHAT_STALE_AFTER_S": "5"}) as server:
        asyncio.run(send_and_watch(server))
        replies = Message.objects.filter(conversation=conversation, role="assistant", parent__isnull=False)
        wait_until(lambda: replies.filter(content__contains="w60 ").exists(), message="no checkpoint after w60")
        server.process.kill()  # SIGKILL: no cleanup, no final write
        server.process.wait(timeout=10)

    reply = Message.objects.get(conversation=conversation, role="assistant", parent__isnull=False)
    assert reply.status == Message.Status.STREAMING  # the dead worker could not finish it
    assert reply.content.startswith("w0 w1 w2 ") and len(reply.content.split()) >= 60
    settings.CHAT_STALE_AFTER_S = 5
    # The behaviour under test, not background work: the last heartbeat must grow older than 5 s.
    while (time.time() - reply.heartbeat_at.timestamp()) <= 5:
        time.sleep(0.2)

    client = Client()
    client.force_login(alice)
    page = client.get(conversation.get_absolute_url()).content.decode()
    assert re.search(r'data-role="assistant" data-status="interrupted"', page)
    assert "This reply was interrupted" in page
    reply.refresh_from_db()
    assert reply.status == Message.Status.INTERRUPTED and reply.content_html.startswith("<p>w0 w1")

    # Nothing is stuck: a new worker takes the next message and finishes it.
    type(persona.model).objects.filter(pk=persona.model_id).update(model_id="long:3")

    async def next_reply(server: DaphneServer) -> None:
        url = server.ws_url(f"/ws/conversations/{conversation.public_id}/")
        async with connect(url, origin=server.origin, additional_headers={"Cookie": cookie}) as ws:
            await ws.send(json.dumps({"action": "send", "message": "again"}))
            async with asyncio.timeout(20):
                while 'data-status="complete" hx-swap-oob="true"' not in await ws.recv():
                    pass

    with DaphneServer() as server:
        asyncio.run(next_reply(server))
    statuses = list(
        Message.objects.filter(conversation=conversation, role="assistant")
        .order_by("created_at")
        .values_list("status", flat=True)
    )
    assert statuses == ["complete", "interrupted", "complete"]
