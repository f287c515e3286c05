"""Websocket helpers for tests: a logged-in tab on the real ASGI application, and waiting for a reply."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chatsite.asgi import application
from conversations import services
from conversations.models import Conversation, Message
from tests.servers import session_cookie
from tests.waiting import async_wait_until


class ChatSocket:
    """A browser tab's websocket, speaking the page's frames and reading its fragments."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.received: list[str] = []

    async def send(self, message: str, **extra) -> None:
        await self.communicator.send_to(text_data=json.dumps({"action": "send", "message": message, **extra}))

    async def stop(self) -> None:
        await self.communicator.send_to(text_data=json.dumps({"action": "stop"}))

    async def receive(self, timeout: float = 5) -> str:
        frame = await self.communicator.receive_output(timeout)
        if frame["type"] == "websocket.close":
            raise ConnectionResetError(frame.get("code"))
        self.received.append(frame["text"])
        return frame["text"]

    async def receive_until(self, needle: str, timeout: float = 10) -> list[str]:
        """Receive fragments until one contains `needle`; return them all."""
        frames = []
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.receive(timeout)
                frames.append(frame)
                if needle in frame:
                    return frames

    async def receive_final(self, status: str = "complete", timeout: float = 10) -> list[str]:
        """Receive fragments until the finished reply bubble with `status` replaces the streaming one."""
        return await self.receive_until(f'data-status="{status}" hx-swap-oob="true"', timeout)

    async def handled(self, timeout: float = 10) -> list[str]:
        """Return once the consumer has handled every frame sent before, with the fragments received meanwhile.

        A consumer handles its frames one at a time, in order, and answers a
        full sync with the whole conversation (`<div id="messages" ...>`):
        once that answer is here, the frames before it were handled.
        """
        await self.communicator.send_json_to({"action": "sync", "streaming": [], "full": True})
        return await self.receive_until('<div id="messages" hx-swap-oob="innerHTML">', timeout)

    async def close(self) -> None:
        await self.communicator.disconnect()


@pytest.fixture
async def open_socket():
    """Return an async factory: `await open_socket(user, conversation)` gives a connected ChatSocket.

    At teardown, the replies the test's sockets started are let finish (or,
    after a grace period, cancelled) on the test's own event loop: a reply
    still running when the loop closes would leave its database thread
    waiting on that loop forever, and every later test queued behind it.
    """
    sockets: list[ChatSocket] = []

    async def open_(user, conversation_id, *, origin: bytes = b"http://127.0.0.1") -> tuple[ChatSocket, dict]:
        headers = [(b"origin", origin)]
        if user is not None:
            cookie = await sync_to_async(session_cookie)(user)
            headers.append((b"cookie", cookie.encode()))
        communicator = WebsocketCommunicator(application, f"/ws/conversations/{conversation_id}/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        socket = ChatSocket(communicator)
        sockets.append(socket)
        return socket

    yield open_
    await replies_ended()


async def start_chat(owner, make_persona, model_id: str = "fake-echo", **persona_fields) -> Conversation:
    """Create a persona on the fake upstream's `model_id` (see tests/fakes) and a conversation of `owner` with it."""
    persona = await sync_to_async(make_persona)(model_id, **persona_fields)
    return await sync_to_async(services.conversation_create)(owner=owner, persona=persona)


async def wait_for_reply(message_filter: dict | None = None, timeout: float = 10) -> Message:
    """Poll until the latest assistant reply is no longer streaming; return it."""

    async def finished() -> Message | None:
        message = await Message.objects.filter(role="assistant", **(message_filter or {})).alast()
        return message if message is not None and message.status != Message.Status.STREAMING else None

    return await async_wait_until(finished, timeout_s=timeout, message="the reply is still streaming")


async def replies_settled(timeout: float = 10) -> None:
    """Wait until every reply generation running in this process has ended (with its title, if it makes one).

    The generations are the tasks `generation.start_reply` keeps in its
    process-local `_running` set; a test's websocket consumers run them on
    the test's own event loop.
    """
    from conversations.generation import _running  # Imported here: one line to change if it moves.

    loop = asyncio.get_running_loop()  # A task of an earlier test's closed loop can never end.
    async with asyncio.timeout(timeout):
        while tasks := [task for task in _running if task.get_loop() is loop and not task.done()]:
            await asyncio.gather(*tasks, return_exceptions=True)


async def replies_ended(grace_s: float = 5) -> None:
    """Let this loop's running replies end within `grace_s`, then cancel those still running and wait for them."""
    from conversations.generation import _running

    try:
        await replies_settled(timeout=grace_s)
    except TimeoutError:
        loop = asyncio.get_running_loop()
        tasks = [task for task in _running if task.get_loop() is loop and not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
def write_counter():
    """Record every INSERT/UPDATE/DELETE run on any thread's connection as (sql, params); many rows at once, once."""
    from django.db.backends.utils import CursorWrapper

    writes: list[tuple[str, tuple]] = []
    original, original_many = CursorWrapper.execute, CursorWrapper.executemany

    def record(sql, params) -> None:
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            writes.append((sql.lstrip(), tuple(params or ())))

    def execute(self, sql, params=None):
        record(sql, params)
        return original(self, sql, params)

    def executemany(self, sql, param_list):
        param_list = list(param_list)
        record(sql, param_list)
        return original_many(self, sql, param_list)

    CursorWrapper.execute, CursorWrapper.executemany = execute, executemany
    try:
        yield writes
    finally:
        CursorWrapper.execute, CursorWrapper.executemany = original, original_many
